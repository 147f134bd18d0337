#!/usr/bin/env bash
# Real-world files nobody here wrote (Debian test packages), unpacked into tests/corpora/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=tests/corpora
mkdir -p "$dest/debs"
cd "$dest/debs"
for pkg in htslib-test python-pysam-tests python3-gffutils python-pyfaidx-examples \
    python-pyvcf-examples python3-cyvcf2 r-bioc-variantannotation vcfanno-examples; do
  ls ${pkg}_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
done
for deb in *.deb; do dpkg -x "$deb" ../root; done
echo "corpora in $dest/root"
