"""Checkpoints: tensors + JSON only, atomic state files, model round trip, --resume equal to an uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from ddp_script import toy_config
from gta.errors import GtaInputError
from gta.train import train
from gta.train.checkpoint import (
    STATE_JSON,
    STATE_TENSORS,
    SafetensorsCheckpointIO,
    flatten,
    load_state,
    load_trainable,
    save_state,
    save_trainable,
    unflatten,
)


def _adamw_state() -> dict:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.8, 0.9))
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    return opt.state_dict()


def _assert_same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b or (a != a and b != b)


def test_flatten_round_trips_an_adamw_state_dict():
    state = {"optimizer_states": [_adamw_state()], "loops": {"epoch": 3, "inf": float("inf"), "none": None},
             "__weird": {"__tensor__": "not a tensor"}}
    tree, tensors = flatten(state)
    json.dumps(tree)  # plain JSON
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    back = unflatten(json.loads(json.dumps(tree)), tensors)
    _assert_same(state, back)
    assert set(back["optimizer_states"][0]["state"]) == {0, 1, 2, 3}  # integer keys survive
    assert back["optimizer_states"][0]["param_groups"][0]["betas"] == (0.8, 0.9)  # tuples survive


def test_flatten_refuses_objects_that_would_need_pickle():
    with pytest.raises(TypeError, match="cannot store"):
        flatten({"x": object()})


def test_state_files_are_safetensors_and_json_and_a_torn_pair_is_refused(tmp_path):
    state = {"optimizer_states": [_adamw_state()], "epoch": 2}
    SafetensorsCheckpointIO().save_checkpoint(state, tmp_path / STATE_JSON)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_JSON, STATE_TENSORS]  # no temp files left
    json.loads((tmp_path / STATE_JSON).read_text())
    assert load_file(str(tmp_path / STATE_TENSORS))  # readable without pickle
    _assert_same(state, SafetensorsCheckpointIO().load_checkpoint(tmp_path / STATE_TENSORS))
    old = (tmp_path / STATE_TENSORS).read_bytes()
    save_state({"epoch": 3, "w": torch.ones(2)}, tmp_path)
    (tmp_path / STATE_TENSORS).write_bytes(old)  # tensors from another save than the JSON
    with pytest.raises(GtaInputError, match="does not match"):
        load_state(tmp_path)


def test_model_file_round_trip_gives_identical_predictions(tmp_path, tiny_llm):
    from gta.model.gta import build_model

    cfg = toy_config().model
    torch.manual_seed(0)
    a = build_model(cfg, 4, 32, llm=tiny_llm)
    a.set_feature_norm(torch.rand(4), torch.rand(4) + 0.5)
    save_trainable(tmp_path / "model.safetensors", a, a.feat_mean, a.feat_std, {"target_mean": 1.5})
    torch.manual_seed(1)
    b = build_model(cfg, 4, 32, llm=tiny_llm)
    meta = load_trainable(tmp_path / "model.safetensors", b)
    assert meta == {"target_mean": 1.5}
    x, prompts = torch.randn(3, 32, 4), ["<|start_prompt|>a<|end_prompt|>"] * 3
    a.eval()
    b.eval()
    with torch.no_grad():
        assert torch.equal(a(x, prompts), b(x, prompts))


def _final_weights(run) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run / STATE_TENSORS)).items() if k.startswith("state_dict/")}


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(toy, tmp_path, tiny_llm):
    cfg = toy_config(task="both", max_epochs=3)
    full = train(toy[0], toy[1], tmp_path / "full", cfg, llm=tiny_llm, progress=False)
    part = tmp_path / "part"
    train(toy[0], toy[1], part, cfg, max_epochs=1, llm=tiny_llm, progress=False)
    first = json.loads((part / STATE_JSON).read_text())["tree"]
    assert first["epoch"] == 0 and first["global_step"] == 4
    with pytest.raises(GtaInputError, match="cannot change"):
        train(toy[0], toy[1], part, resume=True, seed=5, llm=tiny_llm, progress=False)
    resumed = train(toy[0], toy[1], part, resume=True, max_epochs=3, llm=tiny_llm, progress=False)
    last = json.loads((part / STATE_JSON).read_text())["tree"]
    assert last["global_step"] == 12 == json.loads((tmp_path / "full" / STATE_JSON).read_text())["tree"]["global_step"]
    steps = pd.read_csv(part / "metrics.csv")["step"]
    assert steps.max() == 11 and steps.is_monotonic_increasing  # appended after the first epoch's rows
    a, b = _final_weights(tmp_path / "full"), _final_weights(part)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    pa = pd.read_parquet(full.predictions["val"])
    pb = pd.read_parquet(resumed.predictions["val"])
    np.testing.assert_allclose(pa["y_pred"], pb["y_pred"], rtol=1e-4, atol=1e-4)
    assert full.summary["best_epoch"] == resumed.summary["best_epoch"]
