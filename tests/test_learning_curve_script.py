"""benchmarks/bench_learning_curve.py --reuse: a size is read from an acceptance folder only when that folder's data
set is the simulator's at that size, and only when the runs it needs are there."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fixtures import load_script
from gta.sim import make_config


@pytest.fixture(scope="module")
def curve():
    return load_script("benchmarks/bench_learning_curve.py")


def _work(tmp_path: Path, curve, n_genes: int) -> Path:
    truth = tmp_path / "W" / "data" / "truth"
    truth.mkdir(parents=True)
    cfg = make_config("tiny", 0, {"n_genes": n_genes}).to_dict()
    (truth / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))  # as gta simulate writes it
    return tmp_path / "W"


def test_reuse_matches_the_recorded_simulation(tmp_path, curve):
    work = _work(tmp_path, curve, 40)
    assert curve.reused_size(work, "tiny", [20, 40], 0) == 40
    assert curve.reused_size(None, "tiny", [20, 40], 0) is None
    with pytest.raises(SystemExit, match="not --preset tiny --sim-seed 1"):
        curve.reused_size(work, "tiny", [20, 40], 1)  # another simulator seed is another data set
    with pytest.raises(SystemExit, match="at any of the sizes"):
        curve.reused_size(work, "tiny", [20, 30], 0)


def test_reused_runs_must_hold_the_models(tmp_path, curve):
    work = _work(tmp_path, curve, 40)
    bench = work / "benchmark"
    bench.mkdir()
    models = [{"name": "GTA", "status": "ok"}, {"name": "GTA no LLM", "status": "failed"}]
    (bench / "results.json").write_text(json.dumps({"models": models}))
    with pytest.raises(SystemExit, match="does not hold"):
        curve.reused_run(work, 0, 0, ["GTA", "GTA no LLM"])  # a failed model is not a point of the curve
    assert curve.reused_run(work, 0, 0, ["GTA"])["models"][0]["name"] == "GTA"
    with pytest.raises(SystemExit, match="bench_llm_verdict.py --work .* --seeds 1"):
        curve.reused_run(work, 1, 0, ["GTA"])  # other seeds come from the verdict's folders
