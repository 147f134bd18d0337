"""Choosing the torch device: ``cpu``, ``cuda[:N]`` or ``auto`` (the GPU of this torchrun worker when CUDA is
present), with a clear error for a device this machine does not have."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from gta.errors import GtaInputError


def choose_device(device: str, cuda_available: bool, env: Mapping[str, str], n_devices: int = 1) -> str:
    """The torch device for ``device``: ``"auto"`` is ``cuda:{LOCAL_RANK}`` when CUDA is available (LOCAL_RANK from
    ``env``, as torchrun sets it, default 0; taken modulo ``n_devices`` visible GPUs, so one GPU per process via
    CUDA_VISIBLE_DEVICES gives ``cuda:0``), else ``"cpu"``; any other value is returned unchanged."""
    if device != "auto":
        return device
    if not cuda_available:
        return "cpu"
    raw = env.get("LOCAL_RANK", "0") or "0"
    try:
        rank = int(raw)
    except ValueError:
        raise GtaInputError(f"LOCAL_RANK must be an integer, got {raw!r}",
                            hint="unset it, or let torchrun set it") from None
    if rank < 0:
        raise GtaInputError(f"LOCAL_RANK must be >= 0, got {rank}")
    return f"cuda:{rank % max(int(n_devices), 1)}"


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (:func:`choose_device`: CUDA when present) -> a torch device
    string; ``cuda`` on a machine without CUDA, or an unknown name: GtaInputError."""
    if device == "auto":
        available = torch.cuda.is_available()
        return choose_device("auto", available, os.environ, torch.cuda.device_count() if available else 1)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GtaInputError(f"--device {device}: this machine has no CUDA device", hint="use --device cpu (or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise GtaInputError(f"--device {device!r} is unknown", hint="use cpu, cuda, cuda:N or auto")
    return device
