"""gta.provenance.source_commit: the commit benchmarks and generated docs record."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

from gta import provenance


def test_source_commit_is_the_checkouts_head():
    root = Path(provenance.__file__).parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
    if head.returncode != 0:
        pytest.skip("gta is not run from a git checkout")
    assert provenance.source_commit() == head.stdout.strip()
    assert provenance.source_commit(dirty=True).split("+")[0] == head.stdout.strip()


def test_outside_git_each_caller_keeps_its_placeholder(monkeypatch):
    monkeypatch.setattr(provenance, "_git", lambda *args, cwd=None: "")
    assert provenance.source_commit() == "unknown"
    assert provenance.source_commit(dirty=True, missing="?") == "?"


def test_dirty_mark_only_when_tracked_files_differ(monkeypatch):
    answers = {"rev-parse": "abc1234", "status": " M src/gta/x.py"}
    monkeypatch.setattr(provenance, "_git", lambda *args, cwd=None: answers[args[0]])
    assert provenance.source_commit(dirty=True) == "abc1234+dirty"
    assert provenance.source_commit() == "abc1234"
    answers["status"] = ""
    assert provenance.source_commit(dirty=True) == "abc1234"


def test_rewritten_results_and_docs_are_not_a_change_of_code(tmp_path):
    """A benchmark script rewrites benchmarks/results/ (tracked) while it runs: the runs after that are the commit's
    code all the same, while an edit of a source file anywhere in the checkout is a change."""
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    files = ["src/gta/a.py", "benchmarks/results/r.json", "benchmarks/b.py", "docs/d.md", "README.md"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    inside = tmp_path / "src" / "gta"  # where gta asks from
    for name in files[1:2] + files[3:]:
        (tmp_path / name).write_text("2\n")
    (tmp_path / "new.py").write_text("untracked\n")
    assert provenance.changed_code(inside) == ""
    (tmp_path / "benchmarks" / "b.py").write_text("2\n")
    assert provenance.changed_code(inside).split() == ["M", "benchmarks/b.py"]


def test_records_name_the_cpu_model_with_its_generation(tmp_path, monkeypatch):
    """One seed's numbers repeat bit for bit on one CPU model only, so records name it; a virtual machine's brand
    alone ("AMD EPYC") does not tell Zen 2 from Zen 4, its family and model numbers do."""
    info = tmp_path / "cpuinfo"
    block = "processor\t: {}\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 49\nmodel name\t: AMD EPYC\n"
    info.write_text(block.format(0) + "\n" + block.format(1).replace("49", "17"))
    assert provenance.cpu_model(info) == "AMD EPYC (family 23, model 49)"  # the first processor's block
    info.write_text("processor\t: 0\nmodel name\t: Apple M2\n")
    assert provenance.cpu_model(info) == "Apple M2"
    monkeypatch.setattr(platform, "processor", lambda: "arm")  # no /proc/cpuinfo (macOS, Windows)
    assert provenance.cpu_model(tmp_path / "absent") == "arm"
    m = provenance.machine()
    assert {"cpu", "cpu_capability", "cores", "python", "torch"} <= set(m)
    line = provenance.machine_line(threads=2)
    assert f"{m['cores']} CPUs, 2 threads" in line and str(m["cpu_capability"]) in line
