"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

* :func:`flatten` / :func:`unflatten` turn any nest of dicts, lists, tuples, tensors, numbers and strings (a
  Lightning checkpoint: AdamW state with integer keys, loop counters, callback states) into ``{key: tensor}`` plus
  a JSON tree with ``{"__tensor__": key}`` leaves, and back.
* :class:`SafetensorsCheckpointIO` is a Lightning ``CheckpointIO`` plugin writing ``state.safetensors`` +
  ``state.json`` so that a process killed at any moment leaves a whole pair (:func:`save_state`: temp files and
  renames, the JSON is the commit and names the tensor file's hash). ``Trainer.fit(ckpt_path=...)`` restores
  through it.
* :func:`save_trainable` / :func:`load_trainable`: ``model.safetensors`` with the trainable parameters, the feature
  normalisation and the target statistics (in the file's metadata) — megabytes, never the frozen LLM.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors.torch import load_file, save_file

from gta.atomic import atomic_path, atomic_write_text
from gta.errors import GtaInputError
from gta.hashing import sha256_file

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
STATE_NEXT = "state.next.safetensors"  # the tensors of a save in progress (see save_state)
MODEL_FILE = "model.safetensors"
NORM_PREFIX = "_norm."
FORMAT = "gta-checkpoint-1"


# ---- nested structures <-> tensors + JSON --------------------------------------------------------------------------
def flatten(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """(JSON-able tree, tensors): tensors are replaced by ``{"__tensor__": key}``; non-str dict keys, tuples and
    non-finite floats are encoded so :func:`unflatten` gives back the same types."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            key = path or "root"
            tensors[key] = x.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(x, np.ndarray):
            return walk(torch.from_numpy(np.ascontiguousarray(x)), path)
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x) and not any(k.startswith("__") for k in x):
                return {k: walk(v, f"{path}/{k}") for k, v in x.items()}
            items = enumerate(x.items())
            return {"__items__": [[walk(k, f"{path}/#k{i}"), walk(v, f"{path}/{i}")] for i, (k, v) in items]}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, f"{path}/{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(x)]
        if isinstance(x, np.generic):
            return walk(x.item(), path)
        if isinstance(x, float) and not math.isfinite(x):
            return {"__float__": repr(x)}
        if x is None or isinstance(x, bool | int | float | str):
            return x
        if isinstance(x, Path):
            return str(x)
        raise TypeError(f"cannot store {type(x).__name__} at {path or '/'} in a checkpoint (tensors + JSON only)")

    return walk(obj, ""), tensors


def unflatten(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(tree, list):
        return [unflatten(v, tensors) for v in tree]
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__tuple__"}:
            return tuple(unflatten(v, tensors) for v in tree["__tuple__"])
        if set(tree) == {"__items__"}:
            return {unflatten(k, tensors): unflatten(v, tensors) for k, v in tree["__items__"]}
        if set(tree) == {"__float__"}:
            return float(tree["__float__"])
        return {k: unflatten(v, tensors) for k, v in tree.items()}
    return tree


def save_state(obj: Any, folder: str | Path) -> None:
    """Write ``obj`` as ``state.safetensors`` + ``state.json`` in ``folder`` so that a crash at any moment (SIGKILL,
    power cut of the process) leaves one whole pair on disk, the old one or the new one:

    1. the tensors go to ``state.next.safetensors`` (atomically: temp file + rename);
    2. ``state.json``, naming their hash, replaces the old one (atomically): this is the commit;
    3. ``state.next.safetensors`` replaces ``state.safetensors``.

    A crash before 2 leaves the old pair (and a stale ``state.next``, ignored); a crash between 2 and 3 leaves the new
    JSON with its tensors still in ``state.next``, where :func:`load_state` finds them (and where this function
    promotes them before overwriting ``state.next``).
    """
    folder = Path(folder)
    if (folder / STATE_NEXT).exists() and _committed_digest(folder) == sha256_file(folder / STATE_NEXT):
        _promote(folder)  # the previous save was cut between its commit and its rename
    for stale in (*folder.glob(f".{STATE_TENSORS}.*.tmp"), *folder.glob(f".{STATE_NEXT}.*.tmp"),
                  *folder.glob(f".{STATE_JSON}.*.tmp")):  # temp files of a save that was killed
        stale.unlink(missing_ok=True)
    tree, tensors = flatten(obj)
    with atomic_path(folder / STATE_NEXT) as tmp:
        save_file(tensors, str(tmp))
        digest = sha256_file(tmp)
    atomic_write_text(folder / STATE_JSON, json.dumps({"format": FORMAT, "tensors_sha256": digest, "tree": tree}))
    _promote(folder)


def _committed_digest(folder: Path) -> str | None:
    try:
        return json.loads((folder / STATE_JSON).read_text()).get("tensors_sha256")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _promote(folder: Path) -> None:
    """Step 3 of :func:`save_state`: the committed tensors take their final name."""
    os.replace(folder / STATE_NEXT, folder / STATE_TENSORS)


def load_state(folder: str | Path) -> Any:
    """Read what :func:`save_state` wrote: the tensor file whose hash ``state.json`` names (``state.safetensors``, or
    ``state.next.safetensors`` after a crash between the commit and the rename); refuses a pair that does not match.
    Reads only, so every rank of a distributed run may call it at once."""
    folder = Path(folder)
    meta_path, tensor_path = folder / STATE_JSON, folder / STATE_TENSORS
    if not meta_path.exists() or not (tensor_path.exists() or (folder / STATE_NEXT).exists()):
        raise GtaInputError("no resumable state in the run folder", path=folder,
                            hint=f"--resume needs {STATE_JSON} and {STATE_TENSORS}; start without --resume")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GtaInputError(f"damaged {STATE_JSON} ({e})", path=meta_path,
                            hint="start again without --resume") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise GtaInputError(f"unknown checkpoint format {got!r}", path=meta_path)
    for path in (tensor_path, folder / STATE_NEXT):
        if path.exists() and meta.get("tensors_sha256") == sha256_file(path):
            return unflatten(meta["tree"], load_file(str(path)))
    raise GtaInputError("state.safetensors does not match state.json (changed after it was saved?)",
                        path=tensor_path, hint="start again without --resume")


def state_folder(path: str | Path) -> Path:
    """The run folder a checkpoint path names (``runs/x``, ``runs/x/state.json`` or ``runs/x/state.safetensors``)."""
    path = Path(path)
    return path.parent if path.name in (STATE_JSON, STATE_TENSORS) else path


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO plugin: ``state.safetensors`` + ``state.json`` in the folder the path names."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        save_state(checkpoint, state_folder(path))

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        state = load_state(state_folder(path))
        if map_location is not None:
            state = _to_device(state, map_location)
        return state

    def remove_checkpoint(self, path) -> None:
        folder = state_folder(path)
        for name in (STATE_JSON, STATE_TENSORS, STATE_NEXT):
            (folder / name).unlink(missing_ok=True)


def _to_device(obj: Any, device: Any) -> Any:
    if callable(device) and not isinstance(device, torch.device | str):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


# ---- the trainable weights -----------------------------------------------------------------------------------------
def save_trainable(path: str | Path, model, feature_mean: torch.Tensor, feature_std: torch.Tensor,
                   meta: dict[str, Any]) -> None:
    """``model.safetensors``: ``model.trainable_state_dict()`` + feature norm tensors; ``meta`` (JSON) as metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.trainable_state_dict().items()}
    tensors[NORM_PREFIX + "feature_mean"] = feature_mean.detach().float().cpu().contiguous()
    tensors[NORM_PREFIX + "feature_std"] = feature_std.detach().float().cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "meta": json.dumps(meta)})


def load_trainable(path: str | Path, model) -> dict[str, Any]:
    """Load ``model.safetensors`` into ``model`` (weights + feature norm); returns its metadata dict."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise GtaInputError("run folder has no model.safetensors", path=path,
                            hint="train first (gta train), or point --run at a finished run")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except SafetensorError as e:
        raise GtaInputError(f"not a readable safetensors file ({e})", path=path,
                            hint="the file is truncated or damaged: copy it again, or train the run again") from None
    norm = [NORM_PREFIX + "feature_mean", NORM_PREFIX + "feature_std"]
    if not all(k in tensors for k in norm):
        raise GtaInputError("model.safetensors lacks the feature normalisation tensors", path=path,
                            hint="this is not a model file written by gta train")
    mean, std = (tensors.pop(k) for k in norm)
    try:
        model.load_trainable_state_dict(tensors)
    except RuntimeError as e:  # strict load_state_dict: missing, unexpected or mis-shaped tensors
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise GtaInputError(f"model.safetensors does not fit the run's config.yaml: {first[:200]}", path=path,
                            hint="keep each run folder's files together, as gta train wrote them") from None
    model.set_feature_norm(mean, std)
    return json.loads(metadata.get("meta", "{}"))
