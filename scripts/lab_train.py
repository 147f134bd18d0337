"""Lab bench for issue 13 (docs/learning.md): a plain training loop over in-memory reference features, with the
GTA model of gta.model and switchable variants of its front end, alignment and head. An experiment harness, not the
training path (that is gta.train); results are appended to --log (JSON lines).

    python scripts/lab_train.py --data DIR_WITH_dataset.yaml_AND_features.zarr [--layers 2] [--prompt 0] ...
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from gta.llm_loader import load_llm
from gta.model.gta import GTAConfig, build_model, insulation_gate
from gta.train.config import TrainConfig
from gta.train.data import build_run_data
from gta.train.prompts import run_prompts
from gta.train.run import open_inputs

torch.set_num_threads(int(os.environ.get("LAB_THREADS", "2")))


def load(data_dir: Path):
    dataset, store = open_inputs(data_dir / "dataset.yaml", data_dir / "features.zarr")
    data = build_run_data(dataset, store, TrainConfig(), need_individuals=False)
    cache = data_dir / "lab_cache.npz"
    if cache.exists():
        X = np.load(cache)["X"]
    else:
        X = np.stack([np.asarray(store.read_ref(g), np.float32) for g in data.gene_ids])
        np.savez(cache, X=X)
    prompts = run_prompts(dataset, data.gene_ids, folder=data_dir, progress=False)
    names = list(store.feature_names) if hasattr(store, "feature_names") else None
    return dataset, data, X, prompts, names


def load_haplotypes(hap_store: Path, dataset, genes: np.ndarray, n_ind: int, seed: int, args):
    """Personal windows of ``n_ind`` training individuals per gene (fixed draw): features [G, n, 2, bins, f] as
    float16 and standardised targets [G, n] (the gene-level standardisation), for within-gene supervision."""
    from gta.features.store import FeatureStore
    store = FeatureStore.open(hap_store)
    hdata = build_run_data(dataset, store, TrainConfig(task="both"), need_individuals=True)
    train_s = hdata.samples_in("train")
    rng = np.random.default_rng([seed, 7])
    H = np.zeros((len(genes), n_ind, 2, store.n_bins, store.n_features), np.float16)
    Y = np.full((len(genes), n_ind), np.nan, np.float32)
    index = {g: i for i, g in enumerate(hdata.gene_ids)}
    t0 = time.time()
    for r, gid in enumerate(genes):
        gi = index[gid]
        table = store.sample_haps(gid)
        ok = [k for k in train_s if np.isfinite(hdata.y_ind[gi, k]) and hdata.samples[k] in table]
        pick = [ok[i] for i in sorted(rng.choice(len(ok), min(n_ind, len(ok)), replace=False))]
        keys = [key for k in pick for key in table[hdata.samples[k]]]
        H[r, :len(pick)] = transform(store.read_haps(gid, keys), args).reshape(len(pick), 2, *H.shape[3:])
        Y[r, :len(pick)] = hdata.standardise(hdata.y_ind[gi, pick])
    print(f"haplotypes of {n_ind} individuals x {len(genes)} genes in {time.time() - t0:.0f} s", flush=True)
    return torch.from_numpy(H), torch.from_numpy(Y)


class Stem(nn.Module):
    """Shared per-bin encoder: [b, n, f] -> conv stem -> pool within patch -> [b, p, d] (+ position)."""

    def __init__(self, f, c, d, n_bins, patch, kernel=3, pool="sum", dropout=0.1, arch="k3", promoter=0):
        super().__init__()
        self.patch, self.pool, self.promoter = patch, pool, promoter
        if promoter:  # the 2K bins around the TSS at full resolution: one more token, weights per bin offset
            self.prom = nn.Linear(c * 2 * promoter, d)
            self.prom_pos = nn.Parameter(torch.randn(d) * 0.02)
        self.conv = make_stem_conv(f, c, kernel, arch)
        self.n_patch = math.ceil(n_bins / patch)
        width = 2 * c if pool == "summax" else c
        self.proj = nn.Linear(width, d)
        self.position = nn.Parameter(torch.randn(self.n_patch, d) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = self.conv(x.transpose(1, 2))  # [b, c, n]
        b, c, n = h.shape
        h0 = h
        pad = self.n_patch * self.patch - n
        if pad:
            h = torch.nn.functional.pad(h, (0, pad))
        h = h.reshape(b, c, self.n_patch, self.patch)
        if self.pool == "sum":
            z = h.sum(-1) / math.sqrt(self.patch)
        elif self.pool == "summax":
            z = torch.cat([h.sum(-1) / math.sqrt(self.patch), h.amax(-1)], 1)
        elif self.pool.startswith("gem"):  # generalised mean, p from the name (gem3): between sum (1) and max
            q = float(self.pool[3:] or 3)
            z = torch.relu(h).pow(q).mean(-1).clamp_min(1e-6).pow(1 / q)
        else:
            z = h.amax(-1)
        tok = self.proj(z.transpose(1, 2)) + self.position
        self.last_bins = h0  # [b, c, n]: read by a head whose boundaries come from single bins (--boundary bins)
        if self.promoter:
            c0, k = n // 2, self.promoter
            pr = self.prom(h0[:, :, c0 - k:c0 + k].reshape(b, -1)) + self.prom_pos
            tok = torch.cat([tok[:, :self.n_patch // 2], pr[:, None], tok[:, self.n_patch // 2:]], 1)
        return self.dropout(tok)


def make_stem_conv(f, c, kernel, arch):
    """k3: conv(kernel) GELU 1x1 GELU (the package's BinStem); pw: 1x1 GELU (per-bin thresholds) -> conv(kernel)
    GELU (neighbourhood sums) -> 1x1 GELU."""
    if arch == "k3":
        return nn.Sequential(nn.Conv1d(f, c, kernel, padding=kernel // 2), nn.GELU(), nn.Conv1d(c, c, 1), nn.GELU())
    return nn.Sequential(nn.Conv1d(f, 2 * c, 1), nn.GELU(), nn.Conv1d(2 * c, 2 * c, kernel, padding=kernel // 2),
                         nn.GELU(), nn.Conv1d(2 * c, c, 1), nn.GELU())


class Simple(nn.Module):
    """No alignment, no LLM: stem patches -> (optional transformer) -> GTA head."""

    def __init__(self, args, f, n):
        super().__init__()
        from gta.model.gta import Head
        self.stem = Stem(f, args.stem_c, args.d_model, n, args.patch, args.kernel, args.pool, args.dropout,
                         args.stem_arch, args.promoter)
        if args.head == "attn":
            self.head = Head(args.d_model, self.stem.n_patch + (1 if args.promoter else 0), 128, 1, args.dropout)
        elif args.head in ("gated", "sumgated"):
            self.head = GatedHead(args.d_model, self.stem.n_patch, n, args.patch, 128, args.dropout, args.head,
                                  promoter_at=self.stem.n_patch // 2 if args.promoter else None,
                                  bin_channels=args.stem_c if args.boundary == "bins" else 0)
        else:
            self.head = AdditiveHead(args.d_model, self.stem.n_patch, 128, args.dropout, args.head)
        self.register_buffer("feat_mean", torch.zeros(f))
        self.register_buffer("feat_std", torch.ones(f))

    def set_feature_norm(self, mu, sd):
        self.feat_mean.copy_(mu)
        self.feat_std.copy_(torch.where(sd > 1e-6, sd, torch.ones_like(sd)))

    def n_trainable(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, x, prompts=None):
        tokens = self.stem((x - self.feat_mean) / self.feat_std)
        if getattr(self.head, "bin_boundary", None) is not None:
            return self.head(tokens, bins=self.stem.last_bins)[0]
        return self.head(tokens)[0]


class WithPromptTerm(nn.Module):
    """model(x, prompts) + a linear read of a fixed per-gene prompt summary (row index passed as ``rows``)."""

    def __init__(self, model, summaries, hidden=0, dropout=0.2):
        super().__init__()
        self.model = model
        self.register_buffer("summaries", summaries)
        d = summaries.shape[1]
        self.term = (nn.Sequential(nn.Dropout(dropout), nn.Linear(d, 1)) if not hidden else
                     nn.Sequential(nn.Dropout(dropout), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, 1)))

    def set_feature_norm(self, mu, sd):
        self.model.set_feature_norm(mu, sd)

    def n_trainable(self):
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, x, prompts=None, rows=None):
        return self.model(x, prompts) + self.term(self.summaries[rows])


class AdditiveHead(nn.Module):
    """[b, p, m] -> [b, t]: standardise, LayerNorm, Linear-GELU, then a sum over patches of a shared MLP's output
    times a learnt per-patch gain (expression as a sum of distance-weighted contributions); ``mode="both"`` adds the
    attention-pooled branch of the GTA head."""

    def __init__(self, d, n_patch, hidden=128, dropout=0.1, mode="sum", standardise=True):
        super().__init__()
        from gta.model.gta import Head, PatchStandardiser
        first = [PatchStandardiser(n_patch, d)] if standardise else []
        self.proj = nn.Sequential(*first, nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout))
        self.contrib = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.log_gain = nn.Parameter(torch.zeros(n_patch))
        self.bias = nn.Parameter(torch.zeros(1))
        self.n_patch = n_patch
        self.attn = Head(d, n_patch, hidden, 1, dropout, standardise) if mode == "both" else None

    def forward(self, hidden):
        h = self.proj(hidden)
        u = self.contrib(h).squeeze(-1) * self.log_gain.exp()  # [b, p]
        y = u.sum(-1, keepdim=True) / math.sqrt(self.n_patch) + self.bias
        if self.attn is not None:
            y = y + self.attn(hidden)[0]
        return y, u


class GatedHead(nn.Module):
    """GTA's head (``mode="gated"``: attention pooling) or the additive head (``"sumgated"``) with learnt insulation:
    each patch has a boundary strength b = sigmoid(w.h - 2), and a patch's weight (attention score + log gate) or
    contribution (times the gate) is scaled by the product of (1 - b) over the patches between it and the TSS."""

    def __init__(self, d, n_patch, n_bins, patch, hidden=128, dropout=0.1, mode="gated", standardise=True,
                 promoter_at: int | None = None, bin_channels: int = 0):
        super().__init__()
        self.patch = patch
        # boundaries read from single bins (max over the patch's bins) rather than from the pooled patch token
        self.bin_boundary = nn.Sequential(nn.Linear(bin_channels, hidden), nn.GELU(), nn.Linear(hidden, 1)) \
            if bin_channels else None
        from gta.model.gta import PatchStandardiser
        self.promoter_at = promoter_at  # index of the promoter token: no boundary, gate 1 (it sits at the TSS)
        n_patch += promoter_at is not None
        first = [PatchStandardiser(n_patch, d)] if standardise else []
        self.proj = nn.Sequential(*first, nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout))
        self.boundary = nn.Linear(hidden, 1)
        self.centre = (n_bins // 2) // patch
        self.mode = mode
        self.patch_bias = nn.Parameter(torch.zeros(n_patch))
        if mode == "gated":
            self.score = nn.Linear(hidden, 1)
            self.out = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            self.contrib = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
            self.bias = nn.Parameter(torch.zeros(1))
        self.n_patch = n_patch

    def forward(self, hidden, summary=None, bins=None):  # summary: GTA passes the prompt's (--prompt-ridge reads it)
        h = self.proj(hidden)
        if bins is not None:  # [b, c, n] -> per-bin logits -> max over each patch's bins
            logit = self.bin_boundary(bins.transpose(1, 2)).squeeze(-1)  # [b, n]
            pad = -logit.shape[1] % self.patch
            logit = nn.functional.pad(logit, (0, pad), value=-1e4).reshape(len(logit), -1, self.patch).amax(-1)
            if self.promoter_at is not None:
                i = self.promoter_at
                logit = torch.cat([logit[:, :i], torch.zeros_like(logit[:, :1]), logit[:, i:]], 1)
        else:
            logit = self.boundary(h).squeeze(-1)
        log_open = -nn.functional.softplus(logit - 2.0)  # [b, p]
        log_gate = insulation_gate(log_open, self.centre, self.promoter_at)
        if self.mode == "gated":
            w = (self.score(h).squeeze(-1) + self.patch_bias + log_gate).softmax(-1)
            return self.out(torch.einsum("bp,bpc->bc", w, h)), w
        u = self.contrib(h).squeeze(-1) * self.patch_bias.exp() * log_gate.exp()
        return u.sum(-1, keepdim=True) / math.sqrt(self.n_patch) + self.bias, u


def centred_forward(self, patches, prototypes, return_attention=False):
    """ReprogrammingLayer.forward with values centred over the prototypes (and an optional temperature)."""
    from einops import rearrange
    q = rearrange(self.query(self.query_norm(patches)), "b p (h e) -> b h p e", h=self.n_heads)
    protos = self.proto_norm(prototypes - prototypes.mean(dim=0, keepdim=True))
    k = rearrange(self.key(protos), "k (h e) -> h k e", h=self.n_heads)
    v = rearrange(self.value(protos), "k (h e) -> h k e", h=self.n_heads)
    if self.centre:
        v = v - v.mean(dim=1, keepdim=True)
    scores = torch.einsum("bhpe,hke->bhpk", q, k) / math.sqrt(self.d_keys) * self.temp
    attn = scores.softmax(dim=-1)
    mixed = torch.einsum("bhpk,hke->bhpe", self.dropout(attn), v)
    mixed = self.out(rearrange(mixed, "b h p e -> b p (h e)"))
    if getattr(self, "skip", None) is not None:
        mixed = mixed + self.skip(patches)
    tokens = mixed * self.fixed_scale if getattr(self, "fixed_scale", None) is not None else self.norm(mixed)
    return (tokens, attn) if return_attention else tokens


def make_model(args, llm, f, n):
    if args.arch == "simple":
        return Simple(args, f, n)
    cfg = GTAConfig(llm="embedded", llm_layers=args.layers, patch_len=args.patch, patch_stride=args.patch,
                    n_prototypes=args.protos, prototype_vocab=8192, d_model=args.d_model, use_prompt=args.prompt,
                    backbone=args.backbone, alignment=args.alignment, dropout=args.dropout,
                    stem_channels=args.stem_c if args.stem else 0, stem_kernel=args.kernel,
                    head_standardise=bool(args.head_standardise), prompt_readout=bool(args.readout),
                    align_residual=bool(args.align_residual), promoter_bins=args.promoter,
                    patch_pool="gem" if args.pool.startswith("gem") else "sum",
                    patch_pool_p=float(args.pool[3:] or 2) if args.pool.startswith("gem") else 2.0)
    model = build_model(cfg, f, n, llm=llm)
    if args.stem and args.stem_arch != "k3":
        model.stem.net = make_stem_conv(f, args.stem_c, args.kernel, args.stem_arch)
    if args.head in ("gated", "sumgated"):
        model.head = GatedHead(model.llm.d_llm, model.n_patch, n, args.patch, 128, args.dropout, args.head,
                               bool(args.head_standardise),
                               promoter_at=model.promoter_at if model.promoter is not None else None)
    elif args.head != "attn":
        model.head = AdditiveHead(model.llm.d_llm, model.n_patch, 128, args.dropout, args.head,
                                  bool(args.head_standardise))
    if args.centred and cfg.alignment == "prototype":
        import types
        model.align.temp = nn.Parameter(torch.tensor(float(args.temp)))
        model.align.centre = args.centred == 1
        model.align.skip = nn.Linear(args.d_model, model.llm.d_llm) if args.skip else None
        if args.noRMS:
            model.align.out = nn.Linear(model.align.out.in_features, model.align.out.out_features, bias=False)
            with torch.no_grad():
                x = torch.randn(8, 28, args.d_model)
                protos = model.prototypes(model.llm.word_embeddings())
                model.align.fixed_scale = None
                model.align.norm = nn.Identity()
                raw = centred_forward(model.align, x, protos)
                target = float(model.llm.word_embeddings().pow(2).mean().sqrt())
                scale = target / float(raw.pow(2).mean().sqrt())
            model.align.fixed_scale = nn.Parameter(torch.tensor(scale))
        model.align.forward = types.MethodType(centred_forward, model.align)
    return model


def _spread(x) -> float:
    """Across-gene sd over mean |x| (rows = genes of the batch), averaged over the other axes."""
    x = x.detach().float()
    return round(float(x.std(0).mean() / x.abs().mean().clamp(min=1e-12)), 5)


def attach_diagnostics(model) -> dict:
    """Forward hooks that keep, for the last batch: across-gene spread of the patch embeddings, aligned tokens, LLM
    output and the head's standardised input; alignment attention entropy (fraction of the maximum) and the number
    of distinct argmax prototypes (learning.md, entries 2 and 12)."""
    probe: dict = {}

    def on_embed(_m, _i, out):
        probe["patch"] = _spread(out)

    def on_align(_m, _i, out):
        tokens, attn = out if isinstance(out, tuple) else (out, None)
        probe["tokens"] = _spread(tokens)
        if attn is not None:
            a = attn.detach().float().clamp(min=1e-12)
            probe["entropy"] = round(float((-(a * a.log()).sum(-1)).mean() / math.log(a.shape[-1])), 4)
            probe["argmax_distinct"] = int(a.argmax(-1).unique().numel())

    def on_head(_m, inp, _out):
        probe["hidden"] = _spread(inp[0])

    def on_proj(_m, _i, out):
        probe["head_h"] = _spread(out)

    model.embed.register_forward_hook(on_embed)
    model.align.register_forward_hook(on_align)
    model.head.register_forward_hook(on_head)
    model.head.proj.register_forward_hook(on_proj)
    return probe


def transform(X, args):
    X = X.copy()
    if args.log_counts:
        k = (X.shape[-1] - 1) // 2
        X[..., k:2 * k] = np.log1p(X[..., k:2 * k])  # [max x k, count x k, gc]
    return X


def score_variants(path, data, Xt, predict_x):
    """Lab variant scoring: Pearson of predicted ALT - REF and the true effect of every variant in ``path``."""
    d = np.load(path)
    index = {g: i for i, g in enumerate(data.gene_ids)}
    eff = d["effect"]
    gid = d["gene_id"]
    pred = np.zeros(len(eff), np.float32)
    rows, bins, vals = d["row"], d["bin"], d["val"].astype(np.float32)
    order = np.argsort(rows, kind="stable")
    rows, bins, vals = rows[order], bins[order], vals[order]
    starts = np.searchsorted(rows, np.arange(len(eff) + 1))
    ref_cache = {}
    for g in np.unique(gid):
        ref_cache[g] = float(predict_x(Xt[index[g]][None])[0])
    changed = [i for i in range(len(eff)) if starts[i + 1] > starts[i]]
    for s in range(0, len(changed), 64):
        idx = changed[s:s + 64]
        xb = torch.stack([Xt[index[gid[i]]] for i in idx]).clone()
        for k, i in enumerate(idx):
            a, b = starts[i], starts[i + 1]
            xb[k, torch.as_tensor(bins[a:b])] = torch.as_tensor(vals[a:b])
        alt = predict_x(xb)
        for k, i in enumerate(idx):
            pred[i] = alt[k] - ref_cache[gid[i]]
    sys.path.insert(0, str(Path(__file__).parent))
    from variant_runs import scores  # the same measures as the package-level comparison, per element kind
    out = {"n": int(len(eff)), "n_causal": int((np.abs(eff) > 1e-6).sum()), **scores(pred, dict(d))}
    return out, pred


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True, help="folder with dataset.yaml and features.zarr")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--patch", type=int, default=32)
    ap.add_argument("--protos", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=1)
    ap.add_argument("--backbone", default="llm")
    ap.add_argument("--alignment", default="prototype")
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--stem", type=int, default=0)
    ap.add_argument("--arch", default="gta")
    ap.add_argument("--centred", type=int, default=0)
    ap.add_argument("--freeze-protos", type=int, default=0)
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--noRMS", type=int, default=0)
    ap.add_argument("--head-standardise", type=int, default=1, help="GTAConfig.head_standardise (learning.md, 3)")
    ap.add_argument("--stem-arch", default="k3", help="k3 | pw (see make_stem_conv)")
    ap.add_argument("--ema", type=float, default=0.0, help="evaluate an exponential moving average of the weights")
    ap.add_argument("--prompt-feats", type=Path, default=None,
                    help="npz of per-gene prompt summaries ('mean'); made with --layers layers if missing")
    ap.add_argument("--prompt-hidden", type=int, default=0)
    ap.add_argument("--prompt-ridge", type=int, default=0, help="fix the prompt term to a ridge fit (train genes)")
    ap.add_argument("--head", default="attn", help="attn (GTA's) | sum | both | gated | sumgated")
    ap.add_argument("--boundary", default="token", help="gated heads: boundaries from the patch token or from bins")
    ap.add_argument("--readout", type=int, default=1, help="GTAConfig.prompt_readout (learning.md, 6)")
    ap.add_argument("--temp", type=float, default=1.0)
    ap.add_argument("--stem-c", type=int, default=32)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--pool", default="sum")
    ap.add_argument("--log-counts", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=0.0)
    ap.add_argument("--cosine", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--diag", type=int, default=0, help="every N steps print per-stage across-gene spread (0 = off)")
    ap.add_argument("--scratch-lr", type=float, default=1.0, help="learning-rate factor of the scratch backbone")
    ap.add_argument("--align-residual", type=int, default=0, help="GTAConfig.align_residual")
    ap.add_argument("--mirror", type=float, default=0.0,
                    help="augmentation: share of training windows mirrored about the TSS (upstream <-> downstream)")
    ap.add_argument("--mirror-keep", type=int, default=0,
                    help="bins each side of the TSS that mirroring leaves in place (the promoter)")
    ap.add_argument("--mirror-tta", type=int, default=0, help="predict the mean of the window and its mirror")
    ap.add_argument("--tag", default="")
    ap.add_argument("--hap-store", type=Path, default=None, help="feature store with personal haplotypes: adds a "
                    "within-gene loss on individuals' deviations from their gene's mean")
    ap.add_argument("--hap-ind", type=int, default=8, help="training individuals per gene (a fixed draw)")
    ap.add_argument("--hap-genes", type=int, default=8, help="genes of each batch that bring their individuals")
    ap.add_argument("--hap-weight", type=float, default=1.0)
    ap.add_argument("--hap-dropout", type=int, default=0, help="keep dropout on in the haplotype windows' pass")
    ap.add_argument("--target", default="observed",
                    help="observed | sequence (diagnostic: the simulator's noise-free sequence term, no baseline)")
    ap.add_argument("--promoter", type=int, default=0,
                    help="promoter token: K bins each side of the TSS at full resolution (GTAConfig.promoter_bins)")
    ap.add_argument("--variants", type=Path, default=None,
                    help="ALT features of the test genes' truth variants (the --cache file of "
                    "scripts/variant_runs.py), scored at the best validation epoch (learning.md, entry 42)")
    ap.add_argument("--boundaries", type=Path, default=None, help="save the gated head's boundary strengths (.npy)")
    ap.add_argument("--eqtl", type=Path, default=None, help="per-variant targets of the training genes (.npz: row, "
                    "bin, val, target, gene_id; target = a per-gene elastic net's effect, standardised units): adds "
                    "a loss on the predicted ALT - REF of --eqtl-k variants of each batch gene")
    ap.add_argument("--eqtl-k", type=int, default=4, help="variants per gene and step: half with a non-zero target")
    ap.add_argument("--eqtl-weight", type=float, default=1.0)
    ap.add_argument("--variant-pred", type=Path, default=None, help="save the predicted effects (.npy)")
    ap.add_argument("--log", type=Path, default=Path("lab_results.jsonl"), help="JSON lines, one per run")
    args = ap.parse_args()

    dataset, data, X, prompts, names = load(args.data)
    P0 = prompts
    X = transform(X, args)
    tr, va, te = (np.array(data.genes_in(s)) for s in ("train", "val", "test"))
    y = data.standardise(data.y_gene).astype(np.float32)
    if args.target == "sequence":  # diagnostic only: the truth's noise-free sequence term (reference haplotype)
        import pandas as pd
        truth = pd.read_csv(Path(dataset.manifest.truth) / "genes.tsv", sep="\t").set_index("gene_id")
        seq = (truth.ref_expression - truth.baseline).reindex(data.gene_ids).to_numpy(np.float32)
        y = ((seq - seq[tr].mean()) / seq[tr].std()).astype(np.float32)
    mu = X[tr].reshape(-1, X.shape[-1]).mean(0)
    sd = X[tr].reshape(-1, X.shape[-1]).std(0)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    layers = args.layers if args.backbone != "none" else 1
    llm = None if args.arch == "simple" else load_llm("embedded", num_layers=layers)
    model = make_model(args, llm, X.shape[2], X.shape[1])
    if args.prompt_feats:
        if not args.prompt_feats.exists():  # the frozen LLM's mean hidden state over each prompt, computed once
            probe = load_llm("embedded", num_layers=args.layers)
            with torch.no_grad():
                mean = torch.cat([probe.prompt_summaries([P0[g] for g in data.gene_ids[i:i + 64]])
                                  for i in range(0, len(data.gene_ids), 64)]).numpy()
            np.savez(args.prompt_feats, mean=mean)
        F = np.load(args.prompt_feats)["mean"].astype(np.float32)
        F = (F - F[tr].mean(0)) / (F[tr].std(0) + 1e-6)
        model = WithPromptTerm(model, torch.from_numpy(F), args.prompt_hidden)
        if args.prompt_ridge:  # the term fixed to a ridge fit on the train genes (an annotation prior), not learnt
            from sklearn.linear_model import RidgeCV
            ridge = RidgeCV(alphas=np.logspace(-1, 5, 25)).fit(F[tr], y[tr])
            print(f"prompt ridge alpha {ridge.alpha_:.1f}", flush=True)
            lin = model.term[-1]
            with torch.no_grad():
                lin.weight.copy_(torch.as_tensor(ridge.coef_, dtype=torch.float32)[None])
                lin.bias.fill_(float(ridge.intercept_))
            model.term = nn.Sequential(lin)  # no dropout on a fixed read
            lin.requires_grad_(False)
    model.set_feature_norm(torch.from_numpy(mu), torch.from_numpy(sd))
    if args.freeze_protos and getattr(model, "prototypes", None) is not None:
        model.prototypes.mapping.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    scratch = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("scratch.")]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("scratch.")]
    groups = [{"params": rest}] + ([{"params": scratch, "lr": args.lr * args.scratch_lr}] if scratch else [])
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = math.ceil(len(tr) / args.batch)
    total = steps_per_epoch * args.epochs
    warm = int(args.warmup * total)

    def lr_at(step):
        if warm and step < warm:
            return (step + 1) / warm
        if args.cosine:
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    Xt = torch.from_numpy(X)
    hap_row = {}
    if args.hap_store:
        gids = np.array(data.gene_ids)[tr]
        Ht, Yt = load_haplotypes(args.hap_store, dataset, gids, args.hap_ind, args.seed, args)
        hap_row = {int(g): r for r, g in enumerate(tr)}
        within_var = float(np.nanvar(Yt.numpy() - np.nanmean(Yt.numpy(), 1, keepdims=True)))  # loss in its units
    eqtl = {}
    if args.eqtl:  # gene row -> (nonzero-target variants, zero-target ones), each a list of (bins, vals, target)
        e = np.load(args.eqtl)
        index = {g: i for i, g in enumerate(data.gene_ids)}
        order = np.argsort(e["row"], kind="stable")
        rows_, bins_, vals_ = e["row"][order], e["bin"][order], e["val"][order].astype(np.float32)
        starts = np.searchsorted(rows_, np.arange(len(e["target"]) + 1))
        for i, (g, t) in enumerate(zip(e["gene_id"], e["target"], strict=True)):
            a, b = starts[i], starts[i + 1]
            if b > a:
                part = eqtl.setdefault(index[str(g)], ([], []))[0 if t != 0 else 1]
                part.append((torch.as_tensor(bins_[a:b]), torch.as_tensor(vals_[a:b]), float(t)))
        nz = np.array([t for g in eqtl.values() for (_, _, t) in g[0]])
        eqtl_var = float(np.mean(nz ** 2)) if len(nz) else 1.0
        print(f"eQTL targets: {len(nz)} non-zero over {len(eqtl)} genes; mean square {eqtl_var:.4f}", flush=True)
    erng = np.random.default_rng([args.seed, 3])
    P = [prompts[g] for g in data.gene_ids]
    rng = np.random.default_rng(args.seed)

    aug = np.random.default_rng([args.seed, 1])

    def call(j, flip=None):
        """Model output for genes j; ``flip`` (bool per gene): mirror the window about the TSS (d -> -d)."""
        xb = Xt[j]
        if flip is not None and flip.any():
            xb = xb.clone()
            turned = xb[flip].flip(1)
            if args.mirror_keep:  # the promoter's bins stay as they are (only the flanks swap sides)
                c, k = xb.shape[1] // 2, args.mirror_keep
                turned[:, c - k:c + k] = xb[flip][:, c - k:c + k]
            xb[flip] = turned
        prompts_j = [P[k] for k in j] if args.prompt else None
        if args.prompt_feats:
            return model(xb, prompts_j, rows=torch.as_tensor(j))[:, 0]
        return model(xb, prompts_j)[:, 0]

    named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
    shadow = {n: q.detach().clone() for n, q in named} if args.ema else None

    @contextlib.contextmanager
    def evaluating():
        """Eval mode with the moving average's weights (when --ema) swapped in, restored afterwards."""
        live = {n: q.detach().clone() for n, q in named} if shadow is not None else None
        if live is not None:
            with torch.no_grad():
                for n, q in named:
                    q.copy_(shadow[n])
        model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            model.train()
            if live is not None:
                with torch.no_grad():
                    for n, q in named:
                        q.copy_(live[n])

    def predict(idx):
        out = []
        with evaluating():
            for i in range(0, len(idx), 32):
                j = idx[i:i + 32]
                pred = call(j)
                if args.mirror_tta:  # average the window and its mirror image
                    pred = (pred + call(j, torch.ones(len(j), dtype=torch.bool))) / 2
                out.append(pred)
        return torch.cat(out).numpy()

    def predict_features(xb):
        """Predictions for a feature tensor (the path of predict: moving-average weights, mirror average)."""
        with evaluating():
            out = model(xb)[:, 0]
            if args.mirror_tta:
                out = (out + model(xb.flip(1))[:, 0]) / 2
        return out.numpy()

    probe = attach_diagnostics(model) if args.diag else None
    step = 0
    hist = []
    t0 = time.time()
    for ep in range(args.epochs):
        order = rng.permutation(tr)
        losses = []
        for i in range(0, len(order), args.batch):
            j = order[i:i + args.batch]
            flip = torch.from_numpy(aug.random(len(j)) < args.mirror) if args.mirror else None
            pred = call(j, flip)
            loss = torch.nn.functional.mse_loss(pred, torch.from_numpy(y[j]))
            if hap_row:  # within-gene: individuals' predicted deviations from their gene's mean vs observed ones
                rows = [hap_row[int(g)] for g in j[:args.hap_genes]]
                xh = Ht[rows].float()  # [m, n, 2, bins, f]
                m, n = xh.shape[:2]
                xh = xh.reshape(m * n * 2, *xh.shape[3:])
                if flip is not None:
                    turn = flip[:len(rows)].repeat_interleave(n * 2)
                    xh[turn] = xh[turn].flip(1)
                # eval mode (with gradients): dropout would give every window of a gene its own noise, which the
                # within-gene loss then reads as deviations; and the head's standardiser keeps its gene-level
                # running statistics rather than those of a few genes' individuals
                if args.hap_dropout:  # the diagnostic: only the standardisers in eval mode, dropout on
                    for mod in model.modules():
                        if type(mod).__name__ == "PatchStandardiser":
                            mod.eval()
                else:
                    model.eval()
                ph = model(xh)[:, 0].reshape(m, n, 2).mean(-1)  # diploid: mean of the two haplotypes (log scale)
                model.train()
                yh = Yt[rows]
                ok = torch.isfinite(yh)
                yh, count = torch.nan_to_num(yh), ok.sum(1, keepdim=True).clamp_min(1)
                dev_p = ph - (ph * ok).sum(1, keepdim=True) / count
                dev_y = yh - yh.sum(1, keepdim=True) / count
                loss = loss + args.hap_weight * ((dev_p - dev_y)[ok] ** 2).mean() / within_var
            if eqtl:  # predicted ALT - REF of sampled variants against the per-gene elastic nets' effects
                xs, ts, owner = [], [], []
                for r, g in enumerate(j):
                    nzv, zv = eqtl.get(int(g), ([], []))
                    pick = [nzv[k] for k in erng.choice(len(nzv), min(args.eqtl_k // 2, len(nzv)), replace=False)]
                    pick += [zv[k] for k in erng.choice(len(zv), min(args.eqtl_k - len(pick), len(zv)), replace=False)]
                    for bins_v, vals_v, t_v in pick:
                        x = Xt[int(g)].clone()
                        x[bins_v] = vals_v
                        xs.append(x)
                        ts.append(t_v)
                        owner.append(r)
                if xs:
                    model.eval()  # as the haplotype pass: dropout would put noise into a difference of two windows
                    out = model(torch.cat([Xt[torch.as_tensor(j)], torch.stack(xs)]))[:, 0]
                    model.train()
                    d_pred = out[len(j):] - out[torch.as_tensor(owner)]
                    loss = loss + args.eqtl_weight * ((d_pred - torch.as_tensor(ts)) ** 2).mean() / eqtl_var
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            if shadow is not None:
                with torch.no_grad():
                    for n, q in named:
                        shadow[n].lerp_(q.detach(), 1 - args.ema)
            losses.append(loss.item())
            step += 1
            if probe is not None and step % args.diag == 0:
                print(json.dumps({"step": step, "loss": round(loss.item(), 3),
                                  "pred_sd": round(float(pred.detach().std()), 4)} | probe), flush=True)
        pv, pt = predict(va), predict(te)
        rv, rt = spearmanr(pv, y[va])[0], spearmanr(pt, y[te])[0]
        rtr = spearmanr(predict(tr[:200]), y[tr[:200]])[0]
        hist.append(dict(epoch=ep, loss=float(np.mean(losses)), train=float(rtr), val=float(rv), test=float(rt),
                         sd_ratio=float(pt.std() / y[te].std()), t=round(time.time() - t0, 1)))
        print(json.dumps(hist[-1]), flush=True)
        if rv >= max(h["val"] for h in hist):  # the weights of the best validation epoch, for --variants
            best_state = copy.deepcopy(model.state_dict())
            best_shadow = copy.deepcopy(shadow)
    best = max(hist, key=lambda h: h["val"])
    var = {}
    if args.variants:
        model.load_state_dict(best_state)
        if shadow is not None:
            shadow.update(best_shadow)
        var, var_pred = score_variants(args.variants, data, Xt, predict_features)
        if args.variant_pred:
            np.save(args.variant_pred, var_pred)
    if args.boundaries and getattr(model.head, "boundary", None) is not None:  # [genes, tokens] b of the gate
        model.load_state_dict(best_state)
        seen = []
        hook = model.head.boundary.register_forward_hook(lambda _m, _i, out: seen.append(torch.sigmoid(out - 2)))
        with evaluating(), torch.no_grad():
            for s in range(0, len(Xt), 64):
                model(Xt[s:s + 64])
        hook.remove()
        np.save(args.boundaries, torch.cat(seen).squeeze(-1).numpy())
    rec = dict(args=vars(args) | {"data": str(args.data)}, hist=hist, final_test=hist[-1]["test"],
               best_val_epoch=best["epoch"], test_at_best_val=best["test"], n_trainable=model.n_trainable(),
               variants=var)
    print("RESULT", args.tag, json.dumps({k: v for k, v in rec.items() if k != "hist"}, default=str))
    with open(args.log, "a") as fh:
        fh.write(json.dumps(rec, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
