"""Which code produced a number: the checkout's commit, as the benchmarks and generated docs record it."""

from __future__ import annotations

import subprocess
from pathlib import Path

# what the benchmarks and doc scripts write into the checkout: a run that rewrites them is still the commit's code
GENERATED = ("benchmarks/results", "docs", "README.md")


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd or Path(__file__).parent)
    except OSError:  # no git on this machine
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def source_commit(dirty: bool = False, missing: str = "unknown") -> str:
    """Short commit of the checkout gta runs from; with ``dirty``, ``+dirty`` appended when tracked files other than
    the GENERATED outputs differ from it; ``missing`` when gta is not run from a git checkout."""
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return missing
    return head + ("+dirty" if dirty and changed_code() else "")


def changed_code(cwd: Path | None = None) -> str:
    """``git status`` lines of the tracked files that differ from HEAD, the GENERATED outputs left out."""
    return _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                *(f":(top,exclude){p}" for p in GENERATED), cwd=cwd)
