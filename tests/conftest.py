"""Test configuration: ``tests/`` on ``sys.path`` so test modules can ``import fixtures``; the real-world files
unpacked into ``tests/corpora`` (scripts/fetch_test_corpora.sh) are data, not tests to collect."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

collect_ignore = ["corpora"]


import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread is far faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_llm():
    """A 2-layer randomly initialised Llama with the embedded tokenizer (fast)."""
    from gta.llm_loader import tiny_random_llm

    return tiny_random_llm(num_layers=2)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A tiny data set and feature store with a known signal (tests/ddp_script.py)."""
    from ddp_script import make_toy

    return make_toy(tmp_path_factory.mktemp("toy"))
