"""The frozen LLM sharded across two gloo ranks (FSDP2, one unit per decoder layer) computes what one process does.

The ranks' prompts differ, so their prompt-cache misses differ: without the cross-rank agreement on missing prompts
the layer collectives would not line up and the run would hang (the subprocess timeout turns that into a failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures import free_port

SCRIPT = Path(__file__).parent / "shard_script.py"


def _run(out: Path, world: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "--world", str(world), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed support")
def test_sharded_llm_matches_one_process(tmp_path):
    _run(tmp_path / "one", 1)
    _run(tmp_path / "two", 2)
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    local, full_one = one.pop("decoder_numel").tolist()
    assert local == full_one > 0
    for rank in (0, 1):
        part = load_file(str(tmp_path / "two" / f"rank{rank}.safetensors"))
        local, full = part.pop("decoder_numel").tolist()
        assert full == full_one and local == full // 2  # each rank holds half of every layer
        assert sorted(part) == sorted(k for k in one if k.startswith(f"r{rank}_"))
        for key, value in part.items():  # forward (cached, uncached, inference mode) and input gradients
            torch.testing.assert_close(value, one[key], rtol=1e-5, atol=1e-6, msg=key)

