"""An exponential moving average (EMA) of the trainable weights, evaluated and saved instead of the live weights.

After every optimiser step ``avg = decay * avg + (1 - decay) * w`` for each trainable parameter, with the decay set
from a horizon in epochs, ``decay = 1 - 1 / (epochs * steps per epoch)`` (2 epochs of 50 steps: 0.99), so that the
same setting means the same on a data set of 300 genes and of 30,000. Validation runs on
the averages (so early stopping and the best epoch judge them), and :class:`gta.train.run.RunCheckpoint` saves them
as ``model.safetensors``; training goes on from the live weights. The averages travel in the resumable state.

Lightning's own ``EMAWeightAveraging`` deep-copies the whole LightningModule, frozen LLM included (a second copy of
Llama-sized weights) and averages every tensor; this one keeps a copy of the trainable parameters only (~2.3 M
for the default model). Buffers (the feature normalisation, the head's statistics) stay live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class TrainableEMA(Callback):
    """EMA over ``epochs`` epochs of the parameters of ``pl_module.model`` that require grad; swapped in for
    validation and for saving."""

    def __init__(self, epochs: float) -> None:
        if not epochs > 0:
            raise ValueError(f"EMA horizon must be > 0 epochs, got {epochs}")
        self.epochs = float(epochs)
        self.decay = 0.0  # set from the epoch length when training starts
        self.average: dict[str, torch.Tensor] = {}
        self._pending: dict[str, torch.Tensor] | None = None  # a resumed state's average, until training starts

    @staticmethod
    def _params(pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        return {n: p for n, p in pl_module.model.named_parameters() if p.requires_grad}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The decay from this run's epoch length; the average starts at the weights, or at the resumed state's."""
        self.decay = ema_decay(self.epochs, max(int(trainer.num_training_batches), 1))
        params = self._params(pl_module)
        pending, self._pending = self._pending, None
        self.average = {n: (p.detach() if pending is None else pending[n]).to(p.device, p.dtype, copy=True)
                        for n, p in params.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        for n, p in self._params(pl_module).items():
            self.average[n].lerp_(p.detach(), 1.0 - self.decay)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average:
            self._swap(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average:
            self._swap(pl_module)

    @contextmanager
    def applied(self, pl_module: L.LightningModule) -> Iterator[None]:
        """The averages in place of the live weights inside the block (for saving the best model)."""
        self._swap(pl_module)
        try:
            yield
        finally:
            self._swap(pl_module)

    @torch.no_grad()
    def _swap(self, pl_module: L.LightningModule) -> None:
        for n, p in self._params(pl_module).items():
            live = p.detach().clone()
            p.copy_(self.average[n])
            self.average[n] = live

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "average": {n: t.detach().cpu() for n, t in self.average.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict["average"])


def ema_decay(epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay of an average over ``epochs`` epochs of ``steps_per_epoch`` optimiser steps."""
    return 1.0 - 1.0 / max(epochs * steps_per_epoch, 1.0)
