"""Test configuration: ``tests/`` on ``sys.path`` so test modules can ``import fixtures``; the real-world files
unpacked into ``tests/corpora`` (scripts/fetch_test_corpora.sh) are data, not tests to collect."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

collect_ignore = ["corpora"]
