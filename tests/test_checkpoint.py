"""Checkpoints: tensors + JSON only, atomic state files, model round trip, --resume equal to an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import gta
from ddp_script import toy_config
from gta.errors import GtaInputError
from gta.train import train
from gta.train.checkpoint import (
    MODEL_FILE,
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
    (tmp_path / STATE_JSON).write_text('{"format": ')  # a damaged JSON half is named, not a traceback
    with pytest.raises(GtaInputError, match=f"damaged {STATE_JSON}"):
        load_state(tmp_path)
    (tmp_path / STATE_JSON).write_text("[1, 2]")
    with pytest.raises(GtaInputError, match="unknown checkpoint format"):
        load_state(tmp_path)


class _Crash(BaseException):
    """Stands for the process dying at that line (no except clause catches a BaseException here)."""


def _crash(*args, **kwargs):
    raise _Crash


@pytest.mark.parametrize("where", ["before the commit", "after the commit"])
def test_a_save_cut_at_any_step_leaves_a_whole_pair(tmp_path, monkeypatch, where):
    import gta.train.checkpoint as ckpt

    save_state({"epoch": 1, "w": torch.ones(3)}, tmp_path)
    with monkeypatch.context() as m:
        m.setattr(ckpt, "atomic_write_text" if where == "before the commit" else "_promote", _crash)
        with pytest.raises(_Crash):
            save_state({"epoch": 2, "w": torch.full((3,), 2.0)}, tmp_path)
    state = load_state(tmp_path)
    want = 1 if where == "before the commit" else 2  # the old pair, or the committed new one
    assert state["epoch"] == want and torch.equal(state["w"], torch.full((3,), float(want)))
    save_state({"epoch": 3, "w": torch.full((3,), 3.0)}, tmp_path)  # the next save puts things in order
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_JSON, STATE_TENSORS]
    assert load_state(tmp_path)["epoch"] == 3


def test_a_cut_save_then_a_second_cut_save_still_leaves_a_whole_pair(tmp_path, monkeypatch):
    """Cut after the commit, then cut the next save before its commit: the committed tensors must survive."""
    import gta.train.checkpoint as ckpt

    save_state({"epoch": 1}, tmp_path)
    for target, epoch in (("_promote", 2), ("atomic_write_text", 3)):
        with monkeypatch.context() as m:
            m.setattr(ckpt, target, _crash)
            with pytest.raises(_Crash):
                save_state({"epoch": epoch, "w": torch.full((2,), float(epoch))}, tmp_path)
    state = load_state(tmp_path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.full((2,), 2.0))


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



def test_a_damaged_or_foreign_model_file_is_one_line_naming_it(tmp_path, tiny_llm):
    from safetensors.torch import save_file

    from gta.model.gta import build_model

    cfg = toy_config().model
    a = build_model(cfg, 4, 32, llm=tiny_llm)
    path = tmp_path / "model.safetensors"
    save_trainable(path, a, a.feat_mean, a.feat_std, {})
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])  # cut short, as by a full disk or an interrupted copy
    with pytest.raises(GtaInputError, match="not a readable safetensors file") as err:
        load_trainable(path, a)
    assert str(path) in str(err.value)
    save_file({"x": torch.zeros(2)}, str(path))  # a safetensors file gta did not write
    with pytest.raises(GtaInputError, match="feature normalisation"):
        load_trainable(path, a)
    other = build_model(dataclasses.replace(cfg, alignment="linear"), 4, 32, llm=tiny_llm)
    save_trainable(path, other, a.feat_mean, a.feat_std, {})  # another architecture's weights
    with pytest.raises(GtaInputError, match="does not fit the run's config.yaml"):
        load_trainable(path, a)


def _final_weights(run) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(run / STATE_TENSORS)).items() if k.startswith("/state_dict/")}


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(toy, tmp_path, tiny_llm):
    cfg = toy_config(task="both", max_epochs=3, lr_schedule="constant", warmup_frac=0.0)  # extendable (next test)
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
    assert steps.tolist() == pd.read_csv(tmp_path / "full" / "metrics.csv")["step"].tolist()  # which are kept
    a, b = _final_weights(tmp_path / "full"), _final_weights(part)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    pa = pd.read_parquet(full.predictions["val"])
    pb = pd.read_parquet(resumed.predictions["val"])
    np.testing.assert_allclose(pa["y_pred"], pb["y_pred"], rtol=1e-4, atol=1e-4)
    assert full.summary["best_epoch"] == resumed.summary["best_epoch"]


def test_a_run_with_a_cosine_schedule_cannot_be_resumed_for_more_epochs(toy, tmp_path, tiny_llm):
    """The default schedule (cosine decay after a warm-up) is laid out over max_epochs when the run starts: more epochs
    on resume would change the learning rate of the steps already taken, so it is refused with a hint."""
    part = tmp_path / "part"
    train(toy[0], toy[1], part, toy_config(max_epochs=1), llm=tiny_llm, progress=False)
    with pytest.raises(GtaInputError, match="cannot change max_epochs from 1 to 3 when resuming") as err:
        train(toy[0], toy[1], part, resume=True, max_epochs=3, llm=tiny_llm, progress=False)
    assert "start a new run with more epochs" in err.value.hint
    state = (part / STATE_JSON).read_bytes()
    train(toy[0], toy[1], part, resume=True, max_epochs=1, llm=tiny_llm, progress=False)  # its own length: allowed
    assert (part / STATE_JSON).read_bytes() == state  # nothing left to train


# ---- a crash (SIGKILL) and --resume ----------------------------------------------------------------------------
KILL_SCRIPT = Path(__file__).parent / "kill_script.py"
DROPOUT = 0.1  # dropout draws from the global RNG: a resume that lost the RNG state would not match


def _kill_cfg():
    cfg = toy_config(task="both", max_epochs=3)
    cfg.model = dataclasses.replace(cfg.model, dropout=DROPOUT)
    return cfg


@pytest.fixture(scope="module")
def uninterrupted(toy, tmp_path_factory, tiny_llm):
    out = tmp_path_factory.mktemp("full") / "run"
    train(toy[0], toy[1], out, _kill_cfg(), llm=tiny_llm, progress=False)
    return out


def _killed_run(toy, out: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(gta.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, str(KILL_SCRIPT), str(toy[0]), str(toy[1]), str(out), "--dropout",
                          str(DROPOUT), *flags], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == -signal.SIGKILL, res.stdout + res.stderr
    assert "killing" in res.stdout
    return res


def _trainable(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_equal_runs(a: Path, b: Path) -> None:
    """The same trainable weights, bit for bit: in model.safetensors (best epoch) and in the last state."""
    for load in (lambda run: _trainable(run / MODEL_FILE), _final_weights):
        wa, wb = load(a), load(b)
        assert wa.keys() == wb.keys() and wa
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (k, float((wa[k] - wb[k]).abs().max()))


def test_sigkill_mid_epoch_then_resume_gives_the_weights_of_an_uninterrupted_run(toy, tmp_path, tiny_llm,
                                                                                uninterrupted):
    out = tmp_path / "run"
    _killed_run(toy, out, "--kill-at-step", "6")  # epoch 1 of 3, two of its four steps done
    saved = json.loads((out / STATE_JSON).read_text())["tree"]
    assert saved["epoch"] == 0 and saved["global_step"] == 4  # the last finished epoch
    assert not (out / "summary.json").exists()
    train(toy[0], toy[1], out, resume=True, llm=tiny_llm, progress=False)
    assert json.loads((out / STATE_JSON).read_text())["tree"]["global_step"] == 12
    _assert_equal_runs(uninterrupted, out)
    # the log holds each step once: epoch 0's rows kept, the cut epoch's rows replaced by the ones trained again
    a, b = pd.read_csv(uninterrupted / "metrics.csv"), pd.read_csv(out / "metrics.csv")
    assert b["step"].tolist() == a["step"].tolist() and sorted(a.columns) == sorted(b.columns)
    np.testing.assert_array_equal(a["train_loss"].to_numpy(), b["train_loss"].to_numpy())


def test_sigkill_while_writing_a_checkpoint_leaves_one_that_resumes(toy, tmp_path, tiny_llm, uninterrupted):
    out = tmp_path / "run"
    _killed_run(toy, out, "--kill-in-save", "2")  # epoch 1's state.safetensors written, its state.json not yet
    assert json.loads((out / STATE_JSON).read_text())["tree"]["global_step"] == 4
    load_state(out)  # the pair on disk is whole: epoch 0's
    train(toy[0], toy[1], out, resume=True, llm=tiny_llm, progress=False)
    _assert_equal_runs(uninterrupted, out)


def test_ema_saves_the_average_and_resumes_to_the_same_average(toy, tmp_path, tiny_llm):
    """ema_epochs: validation and model.safetensors see the moving average, not the live weights (which stay in the
    resumable state with the average); a run stopped after one epoch and resumed ends as the uninterrupted run."""
    cfg = toy_config(max_epochs=3, ema_epochs=0.5, patience=0, lr_schedule="constant", warmup_frac=0.0)
    part = tmp_path / "part"
    train(toy[0], toy[1], part, cfg, max_epochs=1, llm=tiny_llm, progress=False)  # best epoch = the only one
    state = load_file(str(part / STATE_TENSORS))
    saved = _trainable(part / MODEL_FILE)
    prefix = "/callbacks/TrainableEMA/average/"
    averaged = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    assert averaged and set(averaged) <= set(saved)
    for k, v in averaged.items():
        assert torch.equal(saved[k], v), k
        live = state["/state_dict/model." + k]
        assert k.endswith("num_batches_tracked") or not torch.equal(live, v), f"{k}: the average is the live weight"
    full = tmp_path / "full"
    train(toy[0], toy[1], full, cfg, llm=tiny_llm, progress=False)
    train(toy[0], toy[1], part, resume=True, max_epochs=3, llm=tiny_llm, progress=False)
    for load in (lambda run: _trainable(run / MODEL_FILE), lambda run: load_file(str(run / STATE_TENSORS))):
        a, b = load(full), load(part)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(GtaInputError, match="ema_epochs"):
        toy_config(ema_epochs=-1)
    from gta.train.ema import ema_decay

    assert ema_decay(2, 50) == pytest.approx(0.99) and ema_decay(2, 8) == pytest.approx(0.9375)
