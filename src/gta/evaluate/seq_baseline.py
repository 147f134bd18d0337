"""A sequence model of Enformer architecture trained from scratch on one-hot windows, with the same targets.

``EnformerScratch`` builds ``enformer_pytorch.Enformer.from_hparams`` at a small size (``dim_divisible_by``
small so the conv tower keeps its channels), runs its trunk on one-hot ``[G, L, 4]`` windows (optionally only the
central ``crop_bp``), and learns a readout from the trunk's embeddings at the bins around the TSS to the target.
Training is budgeted in optimiser steps (``max_steps``), so the same seed and data give the same model on any
machine; ``max_minutes`` is an optional wall-clock cap on top (a score that depends on the machine's load, so off by
default). ``fit_report_`` says how far it got and what stopped it. On 2 CPU cores a full 196,608-bp
window is costly (``seconds_per_sequence`` measures fwd+bwd), hence ``crop_bp`` for demos: the model is then
labelled "Enformer-arch (central X kb)".

Measured on 2 shared CPU cores (torch 2.13, float32, batch 1, fwd+bwd): dim 48 / depth 2 (default) 2.6 s per
196,608-bp sequence (2.5 GB peak RSS), 0.08 s per 32,768-bp crop; dim 96 / depth 4: 5.0 s at full length. So ~300
genes x 20 epochs is ~4.4 h at full length but ~8 min with ``crop_bp=32768``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from gta.errors import GtaInputError

BIN = 128  # 2**7: Enformer's 7 downsamplings


@dataclass
class FitReport:
    epochs_done: int = 0
    steps: int = 0
    seconds: float = 0.0
    stopped_by: str = "epochs"  # epochs | steps | time
    seconds_per_sequence: float = float("nan")  # measured fwd+bwd during training, at the trained length
    train_len_bp: int = 0
    best_val_loss: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class _Net(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, dim_divisible_by: int, readout_bins: int, n_out: int,
                 dropout: float = 0.1):
        super().__init__()
        from enformer_pytorch import Enformer

        if dim % heads or (dim // heads) % 6:
            raise ValueError(f"dim/heads must be a multiple of 6 (relative position features); got {dim}/{heads}")
        self.trunk = Enformer.from_hparams(
            dim=dim, depth=depth, heads=heads, dim_divisible_by=dim_divisible_by, target_length=-1,
            output_heads=dict(human=1), attn_dim_key=max(8, dim // heads), dropout_rate=dropout,
        )
        self.readout_bins = readout_bins
        self.readout = nn.Sequential(nn.LayerNorm(2 * dim), nn.Flatten(1), nn.Linear((2 * readout_bins + 1) * 2 * dim,
                                                                                       n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.trunk(x, return_only_embeddings=True)  # [B, L/128, 2*dim]
        t, k = emb.shape[1] // 2, self.readout_bins
        return self.readout(emb[:, t - k:t + k + 1])  # [B, n_out]


class EnformerScratch:
    """Enformer-architecture trunk + TSS readout, trained from random init: ``fit(one_hot [G,L,4], y)``."""

    def __init__(
        self,
        dim: int = 48,
        depth: int = 2,
        heads: int = 4,
        dim_divisible_by: int = 8,
        readout_bins: int = 2,
        crop_bp: int | None = None,
        epochs: int = 20,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        batch_size: int = 4,
        lr: float = 5e-4,
        weight_decay: float = 1e-2,
        dropout: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
        progress: bool = True,
    ) -> None:
        self.dropout, self.progress = dropout, progress
        self.dim, self.depth, self.heads, self.dim_divisible_by = dim, depth, heads, dim_divisible_by
        self.readout_bins, self.crop_bp, self.epochs = readout_bins, crop_bp, epochs
        self.max_steps, self.max_minutes = max_steps, max_minutes
        self.batch_size, self.lr, self.weight_decay, self.seed, self.device = batch_size, lr, weight_decay, seed, device

    @property
    def label(self) -> str:
        if self.crop_bp:
            return f"Enformer-arch (central {self.crop_bp / 1000:g} kb)"
        return "Enformer-arch"

    def _crop(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 3 or X.shape[-1] != 4:
            raise GtaInputError(f"one-hot input must be [genes, L, 4], got shape {X.shape}")
        L = X.shape[1]
        if self.crop_bp and self.crop_bp < L:
            c = L // 2  # TSS index
            X = X[:, c - self.crop_bp // 2:c - self.crop_bp // 2 + self.crop_bp]
        L = X.shape[1]
        n_bins = L // BIN
        if L % BIN or n_bins < 2 * self.readout_bins + 1:
            raise GtaInputError(f"window length {L} must be a multiple of {BIN} bp with >= "
                                f"{2 * self.readout_bins + 1} bins", hint="choose crop_bp a multiple of 128")
        return X

    def _batch(self, X: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(X[idx], dtype=np.float32), device=self.device)

    def _budget_spent(self, steps: int, start: float) -> str | None:
        """"steps" or "time" once that budget is spent, else None."""
        if self.max_steps is not None and steps >= self.max_steps:
            return "steps"
        if self.max_minutes is not None and time.perf_counter() - start > self.max_minutes * 60:
            return "time"
        return None

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None
            ) -> EnformerScratch:
        """Train; with a validation set, keep the weights of the best validation epoch."""
        from tqdm.auto import tqdm

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        X = self._crop(X)
        y = np.asarray(y, np.float32)
        self.single_ = y.ndim == 1
        y = y.reshape(len(y), -1)
        self.y_mean_, self.y_std_ = y.mean(0), y.std(0) + 1e-6
        yt = torch.as_tensor((y - self.y_mean_) / self.y_std_, device=self.device)
        self.net_ = _Net(self.dim, self.depth, self.heads, self.dim_divisible_by, self.readout_bins,
                         y.shape[1], self.dropout).to(self.device)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rep = FitReport(train_len_bp=int(X.shape[1]))
        start, seq_time, seqs = time.perf_counter(), 0.0, 0
        best_state = None
        bar = tqdm(total=self.epochs, desc=self.label, unit="epoch", leave=False, disable=not self.progress)
        for _epoch in range(self.epochs):
            self.net_.train()
            batches = np.array_split(rng.permutation(len(X)), max(1, int(np.ceil(len(X) / self.batch_size))))
            done = 0
            for b in batches:
                t0 = time.perf_counter()
                loss = nn.functional.mse_loss(self.net_(self._batch(X, b)), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                seq_time += time.perf_counter() - t0
                seqs += len(b)
                rep.steps += 1
                done += 1
                stop = self._budget_spent(rep.steps, start)
                if stop:
                    rep.stopped_by = stop
                    break
            rep.epochs_done += done == len(batches)  # a budget spent on an epoch's last step still completes it
            if X_val is not None and y_val is not None:
                vl = float(np.mean((self.predict(X_val).reshape(len(X_val), -1) - np.asarray(y_val).reshape(
                    len(X_val), -1)) ** 2))
                if rep.best_val_loss is None or vl < rep.best_val_loss:
                    rep.best_val_loss = vl
                    best_state = {k: v.detach().clone() for k, v in self.net_.state_dict().items()}
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if rep.stopped_by != "epochs":
                break
        bar.close()
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        rep.seconds = time.perf_counter() - start
        rep.seconds_per_sequence = seq_time / max(seqs, 1)
        self.fit_report_ = rep
        return self

    def predict(self, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        X = self._crop(X)
        self.net_.eval()
        out = []
        bs = batch_size or self.batch_size
        with torch.inference_mode():
            for i in range(0, len(X), bs):
                out.append(self.net_(self._batch(X, np.arange(i, min(i + bs, len(X))))).cpu().numpy())
        pred = np.concatenate(out) * self.y_std_ + self.y_mean_
        return pred[:, 0] if self.single_ else pred


def seconds_per_sequence(length_bp: int = 196_608, dim: int = 48, depth: int = 2, heads: int = 4,
                         dim_divisible_by: int = 8, batch_size: int = 1, repeats: int = 2) -> float:
    """Measured seconds per sequence for forward + backward of an ``EnformerScratch`` net at ``length_bp``."""
    torch.manual_seed(0)
    net = _Net(dim, depth, heads, dim_divisible_by, 2, 1)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (batch_size, length_bp)), 4).float()
    net(x).sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        net.zero_grad()
        net(x).sum().backward()
    return (time.perf_counter() - t0) / (repeats * batch_size)
