"""gta.provenance.source_commit: the commit benchmarks and generated docs record."""

from __future__ import annotations

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
    monkeypatch.setattr(provenance, "_git", lambda *args: "")
    assert provenance.source_commit() == "unknown"
    assert provenance.source_commit(dirty=True, missing="?") == "?"


def test_dirty_mark_only_when_tracked_files_differ(monkeypatch):
    answers = {"rev-parse": "abc1234", "status": " M src/gta/x.py"}
    monkeypatch.setattr(provenance, "_git", lambda *args: answers[args[0]])
    assert provenance.source_commit(dirty=True) == "abc1234+dirty"
    assert provenance.source_commit() == "abc1234"
    answers["status"] = ""
    assert provenance.source_commit(dirty=True) == "abc1234"
