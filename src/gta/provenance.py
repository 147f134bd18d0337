"""Which code produced a number: the checkout's commit, as the benchmarks and generated docs record it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=Path(__file__).parent)
    except OSError:  # no git on this machine
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def source_commit(dirty: bool = False, missing: str = "unknown") -> str:
    """Short commit of the checkout gta runs from; with ``dirty``, ``+dirty`` appended when tracked files differ
    from it; ``missing`` when gta is not run from a git checkout."""
    head = _git("rev-parse", "--short", "HEAD")
    if not head:
        return missing
    return head + ("+dirty" if dirty and _git("status", "--porcelain", "--untracked-files=no") else "")
