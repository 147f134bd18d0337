#!/usr/bin/env bash
# Render a report.html to a PNG with headless Chromium (Debian package `chromium`).
# Usage: scripts/screenshot_report.sh REPORT.html OUT.png [WIDTH,HEIGHT]
# Exit codes: 0 ok, 2 bad arguments, 3 chromium not found, other: chromium failed.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT.html OUT.png [WIDTH,HEIGHT]" >&2
  exit 2
fi
report=$(realpath "$1")
out=$(realpath -m "$2")
size=${3:-1400,2400}
[[ -f "$report" ]] || { echo "$0: $report: no such file" >&2; exit 2; }

browser=${CHROMIUM:-}
if [[ -z "$browser" ]]; then
  for cand in chromium chromium-browser google-chrome; do
    if command -v "$cand" >/dev/null 2>&1; then browser=$(command -v "$cand"); break; fi
  done
fi
[[ -n "$browser" ]] || { echo "$0: chromium not found (apt-get install -y chromium)" >&2; exit 3; }

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="$size" \
  --screenshot="$out" "file://$report" >/dev/null 2>&1
[[ -s "$out" ]] || { echo "$0: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
