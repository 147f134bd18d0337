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


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name with its family and model numbers (``/proc/cpuinfo`` on Linux; else
    ``platform.processor()`` or the architecture): results of one seed may differ between CPU models."""
    import platform

    try:
        first = cpuinfo.read_text().split("\n\n")[0]
    except OSError:
        first = ""
    info = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    if "model name" not in info:
        return platform.processor() or platform.machine()
    # a virtual machine may show only the brand ("AMD EPYC"); family and model tell the generation
    generation = f" (family {info['cpu family']}, model {info['model']})" if "cpu family" in info else ""
    return info["model name"] + generation


def machine() -> dict[str, object]:
    """The machine a number was measured on: CPU model, the vector instructions torch's kernels use, cores,
    Python and torch versions."""
    import os
    import platform

    import torch

    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "arch": platform.machine(), "python": platform.python_version(), "torch": torch.__version__}


def machine_line(threads: int | None = None) -> str:
    """:func:`machine` as one line for a report's header, with the thread count when given."""
    m = machine()
    used = f", {threads} threads" if threads else ""
    return (f"{m['cpu']}, {m['cpu_capability']}, {m['cores']} CPUs{used}, {m['arch']}, python {m['python']}, "
            f"torch {m['torch']}")
