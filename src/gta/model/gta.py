"""The GTA model: features -> patches -> tokens aligned to word space -> frozen LLM after the prompt -> head.

Axis legend: b = batch, n = bins, f = features, p = patches, d = d_model, k = prototypes, m = d_llm, c = head width,
t = targets.
```
features [b, n, f] - normalise (train-split stats) - shared bin stem [b, n, c] - patch [b, p, l*c]
         - generalised mean (or sum) over the patch's bins - Linear + position - [b, p, d]   (stem_channels=0: Linear)
prototypes = Linear_{V->K}(E^T)^T [k, m]      (E = frozen word embeddings)
tokens     = CrossAttention(q = patches, k = v = prototypes) - Linear (+ Linear(patches)) - RMS scale - [b, p, m]
hidden     = FrozenLLM(tokens, after each gene's cached prompt)  [b, p, m]
y          = head(hidden) [b, t]     (standardise across genes, LayerNorm, Linear-GELU, attention pooling, MLP; fp32)
```
Ablations: ``use_prompt=False`` (no prompt), ``alignment="linear"`` (no prototypes), ``backbone="random"`` (same
architecture, random weights), ``backbone="none"`` (a small transformer trained from scratch instead of the LLM).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gta.errors import GtaInputError
from gta.model.align import (
    POOLS,
    BinStem,
    LinearAlignment,
    PatchEmbedding,
    Patcher,
    PooledPatchEmbedding,
    PromoterToken,
    ReprogrammingLayer,
    TextPrototypes,
    embedding_rms,
    n_patches,
)
from gta.model.llm import FrozenLLM, random_twin

ALIGNMENTS = ("prototype", "linear")
BACKBONES = ("llm", "random", "none")


@dataclass
class GTAConfig:
    llm: str = "embedded"  # "embedded" | path to HF folder | path to .gguf | "tiny-random"
    llm_layers: int | None = 2  # first L layers (None = all); 2 of 30 by default (docs/learning.md, entry 9)
    patch_len: int = 32
    patch_stride: int = 32
    d_model: int = 64
    stem_channels: int = 32  # channels of the per-bin encoder shared by all bins (0 = one Linear per patch offset)
    stem_kernel: int = 3  # bins the stem's first convolution sees
    # how the stem's bins are pooled into a patch: "gem" (generalised mean; with mirrored training windows +0.034-0.048
    # on bench in each of 3 seeds, docs/learning.md entry 20) | "sum" (before session 8)
    patch_pool: str = "gem"
    patch_pool_p: float = 2.0  # the generalised mean's power (1 = mean, larger = closer to the max)
    n_prototypes: int = 256
    prototype_vocab: int | None = 8192  # mix only the first N token embeddings (None = the whole vocabulary)
    n_heads: int = 8
    head_hidden: int = 128
    n_targets: int = 1
    dropout: float = 0.1
    use_prompt: bool = True  # ablation "no prompt"
    alignment: str = "prototype"  # "prototype" | "linear" (ablation "no alignment")
    align_residual: bool = False  # prototype alignment: add a linear path from the patch (docs/learning.md, entry 2)
    head_standardise: bool = True  # standardise the LLM output across the batch's genes first (learning.md, entry 3)
    prompt_readout: bool = True  # plus a fixed ridge read of the prompt's summary (learning.md, entries 7, 13)
    backbone: str = "llm"  # "llm" | "random" (random init, same arch) | "none" (small transformer from scratch)
    # backbone="none": layers of the trainable transformer; one layer of the LLM's width (4 m^2 + 4 m^2 weights) is
    # about the size of GTA's own trainable part (2.7 M vs 2.4 M on the embedded LLM), as the ablation asks
    scratch_layers: int = 1
    gradient_checkpointing: bool = False
    prefix_cache: bool = True
    # at inference, the mean output over the window and its mirror about the TSS (test-time augmentation, as Enformer
    # averages strands and shifts); for models trained on mirrored windows (TrainConfig.mirror_augment). On bench,
    # 5 seeds: +0.008 across genes (4 higher), importance AUPRC +0.028 (5 of 5); docs/learning.md entry 36. It
    # doubles the cost of a prediction.
    mirror_average: bool = True
    # bins each side of the TSS read at full resolution as one more token, placed between the two patches that meet
    # at the TSS (0 = none); docs/learning.md entry 42
    promoter_bins: int = 4
    # the head's pooling weights times a learnt insulation gate: each patch token gets a boundary strength, and a
    # patch's weight is scaled by the product of (1 - boundary) over the patch tokens between it and the TSS, as a
    # TAD boundary shields a promoter from enhancers beyond it (docs/learning.md, entries 30, 43)
    insulation: bool = False

    def __post_init__(self) -> None:
        for name, value, valid in (("alignment", self.alignment, ALIGNMENTS), ("backbone", self.backbone, BACKBONES),
                                   ("patch_pool", self.patch_pool, POOLS)):
            if value not in valid:
                raise GtaInputError(f"model {name} {value!r} is unknown", hint=f"choose one of {', '.join(valid)}")
        if self.patch_pool_p < 1:
            raise GtaInputError(f"model patch_pool_p={self.patch_pool_p} must be >= 1", hint="1 = mean, 2 = default")
        for name, least in (("patch_len", 1), ("patch_stride", 1), ("d_model", 1), ("n_heads", 1), ("n_prototypes", 1),
                            ("head_hidden", 1), ("n_targets", 1), ("scratch_layers", 1), ("stem_kernel", 1),
                            ("stem_channels", 0), ("promoter_bins", 0)):
            if getattr(self, name) < least:
                raise GtaInputError(f"model {name}={getattr(self, name)} must be >= {least}",
                                    hint="0 = none" if least == 0 else None)
        if not 0 <= self.dropout < 1:
            raise GtaInputError(f"model dropout={self.dropout} must be in [0, 1)")
        if self.d_model % self.n_heads:
            raise GtaInputError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}",
                                hint="pick d_model as a multiple of n_heads")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ScratchBackbone(nn.Module):
    """backbone="none": a pre-norm transformer of the LLM's width trained from scratch (prompt tokens = frozen E).

    Its stream is the LLM's input divided by the word embeddings' RMS (unit RMS, as transformers trained from scratch
    expect; the relative scale of prompt and patch tokens is kept), and each residual branch starts at zero, so the
    stack starts as the identity and the head first sees the patch tokens themselves. It trains at a tenth of the
    learning rate (``TrainConfig.scratch_lr``; docs/learning.md, entry 12)."""

    def __init__(self, d_llm: int, n_heads: int, n_layers: int, n_patch: int, dropout: float,
                 embed_rms: float = 1.0) -> None:
        super().__init__()
        self.embed_rms = float(embed_rms)
        layer = nn.TransformerEncoderLayer(d_llm, n_heads, 2 * d_llm, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.position = nn.Parameter(torch.zeros(n_patch, d_llm))
        for block in self.encoder.layers:  # each residual branch starts at zero: the stack starts as the identity
            for last in (block.self_attn.out_proj, block.linear2):
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def forward(self, tokens: Tensor, llm: FrozenLLM, prefixes: list[str] | None) -> Tensor:
        x = tokens / self.embed_rms + self.position  # [b, p, m], unit RMS

        if not prefixes:
            return self.encoder(x)
        ids = [llm.tokenize(p) for p in prefixes]
        width = max(len(i) for i in ids)
        prompt = x.new_zeros(len(ids), width, x.shape[-1])
        pad = torch.ones(len(ids), width + x.shape[1], dtype=torch.bool, device=x.device)
        for b, i in enumerate(ids):
            prompt[b, : len(i)] = llm.embed(i).to(x.dtype) / self.embed_rms
            pad[b, : len(i)] = False
        pad[:, width:] = False
        return self.encoder(torch.cat([prompt, x], dim=1), src_key_padding_mask=pad)[:, width:]


class PatchStandardiser(nn.Module):
    """[b, p, m] -> [b, p, m]: each (patch, channel) of the LLM's output centred and scaled over the rows of the batch
    (batch normalisation without affine weights); running statistics at inference, and for a one-row batch.

    The frozen LLM's hidden states are dominated by what every gene shares at a position (the position itself, the
    prompt's shared text, a few massive channels); what differs between genes is a few percent of it. A head that
    reads them through LayerNorm alone starts with a near-constant output and its gradient is mostly noise, so it
    learns to predict the mean (docs/learning.md, entry 3). Standardising across genes hands the head exactly the
    part that differs. Under DDP the statistics are summed over every rank's rows (an autograd all-reduce, on gloo
    too, where SyncBatchNorm does not run), so W devices compute what one device computes with the whole batch."""

    def __init__(self, n_patch: int, d_llm: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(n_patch, d_llm))
        self.register_buffer("running_var", torch.ones(n_patch, d_llm))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))

    def forward(self, hidden: Tensor) -> Tensor:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if self.training and (hidden.shape[0] > 1 or distributed):
            mean, var = self._batch_stats(hidden, distributed)
        else:  # inference, or one row, which has no spread
            mean, var = self.running_mean, self.running_var
        return ((hidden - mean) / torch.sqrt(var + self.eps)).to(hidden.dtype)

    def _batch_stats(self, hidden: Tensor, distributed: bool) -> tuple[Tensor, Tensor]:
        # in float64: one device and W devices then agree to rounding of the result, not of the partial sums
        wide = hidden.double()
        stats = torch.stack([wide.sum(0), wide.pow(2).sum(0)])  # [2, p, m]
        n = torch.tensor(float(hidden.shape[0]), device=hidden.device, dtype=stats.dtype)
        if distributed:
            from torch.distributed.nn.functional import all_reduce

            stats = all_reduce(stats)
            n = all_reduce(n)
        mean = stats[0] / n
        var = (stats[1] / n - mean.pow(2)).clamp(min=0.0)
        with torch.no_grad():
            unbiased = var * n / (n - 1).clamp(min=1.0)
            self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked += 1
        return mean, var


def insulation_gate(log_open: Tensor, centre: int, skip: int | None = None) -> Tensor:
    """[b, p] log(1 - boundary) per token -> [b, p] log gate: for each token the sum over the tokens strictly between
    it and the TSS. Tokens ``centre..`` lie downstream, ``..centre-1`` upstream; token ``skip`` (the promoter token,
    at the TSS) is neither a boundary nor gated."""
    if skip is not None:
        rest = insulation_gate(torch.cat([log_open[:, :skip], log_open[:, skip + 1:]], 1), centre)
        return torch.cat([rest[:, :skip], torch.zeros_like(rest[:, :1]), rest[:, skip:]], 1)
    down, up = log_open[:, centre:], log_open[:, :centre].flip(-1)  # each nearest to the TSS first
    gate_down = torch.cumsum(down, -1) - down
    gate_up = (torch.cumsum(up, -1) - up).flip(-1)
    return torch.cat([gate_up, gate_down], -1)


class Head(nn.Module):
    """[b, p, m] -> [b, t]: (standardise across genes,) LayerNorm, Linear-GELU, attention pooling (content score +
    learnt per-patch bias), MLP; with ``prompt_readout`` plus a linear read of the prompt's summary [b, m] (already
    standardised by the caller with fixed train-gene statistics) through weights fixed by a ridge fit before
    training, so what the annotation says reaches the output directly: an additive annotation term beside the
    sequence term (docs/learning.md, entry 13). With ``insulation`` (the TSS between tokens ``tss_at - 1`` and
    ``tss_at``; the promoter token, if any, at ``promoter_at``) the pooling scores add a learnt log insulation
    gate (``insulation_gate``)."""

    def __init__(self, d_llm: int, n_patch: int, hidden: int, n_targets: int, dropout: float,
                 standardise: bool = True, prompt_readout: bool = False, insulation: bool = False,
                 tss_at: int = 0, promoter_at: int | None = None) -> None:
        super().__init__()
        self.tss_at, self.promoter_at = tss_at, promoter_at
        self.boundary = nn.Linear(hidden, 1) if insulation else None
        first = [PatchStandardiser(n_patch, d_llm)] if standardise else []
        self.proj = nn.Sequential(*first, nn.LayerNorm(d_llm), nn.Linear(d_llm, hidden), nn.GELU(),
                                  nn.Dropout(dropout))
        self.score = nn.Linear(hidden, 1)
        self.patch_bias = nn.Parameter(torch.zeros(n_patch))
        self.out = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_targets))
        self.prompt = None
        if prompt_readout:  # a fixed ridge read of the standardised summary (GTA.set_prompt_readout); zero until set
            self.prompt = nn.Sequential(nn.Linear(d_llm, n_targets))
            nn.init.zeros_(self.prompt[-1].weight)
            nn.init.zeros_(self.prompt[-1].bias)
            self.prompt.requires_grad_(False)

    def forward(self, hidden: Tensor, summary: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.proj(hidden)  # [b, p, c]
        scores = self.score(h).squeeze(-1) + self.patch_bias  # [b, p]
        if self.boundary is not None:  # boundary strength sigmoid(w.h - 2): ~0.12 at the start
            log_open = -nn.functional.softplus(self.boundary(h).squeeze(-1) - 2.0)  # log(1 - boundary)
            scores = scores + insulation_gate(log_open, self.tss_at, self.promoter_at)
        weights = scores.softmax(dim=-1)
        pooled = torch.einsum("bp,bpc->bc", weights, h)  # [b, c]
        y = self.out(pooled)
        if self.prompt is not None:
            if summary is None:
                raise ValueError("this head reads the prompt's summary: pass it")
            y = y + self.prompt(summary[:, None]).squeeze(1)  # [b, t]
        return y, weights


class GTA(nn.Module):
    """Genetic sequence Token Alignment. The frozen LLM is held but is not part of ``state_dict``/``parameters``."""

    def __init__(self, cfg: GTAConfig, d_feat: int, n_bins: int, llm: FrozenLLM) -> None:
        super().__init__()
        self.cfg, self.d_feat, self.n_bins = cfg, d_feat, n_bins
        self.llm = _resolve_llm(cfg, llm)
        m = self.llm.d_llm
        self.n_patch = n_patches(n_bins, cfg.patch_len, cfg.patch_stride)
        if 2 * cfg.promoter_bins > n_bins:
            raise GtaInputError(f"model promoter_bins={cfg.promoter_bins} needs {2 * cfg.promoter_bins} bins, the "
                                f"features have {n_bins}", hint="lower promoter_bins (0 = no promoter token)")
        self.n_tokens = self.n_patch + (1 if cfg.promoter_bins else 0)  # sequence tokens the LLM and the head see
        # token index of the promoter token: after the patches that start before the TSS (bin n_bins // 2)
        self.promoter_at = int(sum(i * cfg.patch_stride < n_bins // 2 for i in range(self.n_patch)))
        self.register_buffer("feat_mean", torch.zeros(d_feat))
        self.register_buffer("feat_std", torch.ones(d_feat))
        self.reads_prompt = cfg.use_prompt and cfg.prompt_readout
        if self.reads_prompt:  # the prompt summary's train-gene statistics (set_prompt_readout), saved with the weights
            self.register_buffer("prompt_mean", torch.zeros(self.llm.d_llm))
            self.register_buffer("prompt_std", torch.ones(self.llm.d_llm))
        self.patcher = Patcher(cfg.patch_len, cfg.patch_stride)
        if cfg.stem_channels:
            self.stem = BinStem(d_feat, cfg.stem_channels, cfg.stem_kernel)
            self.embed = PooledPatchEmbedding(cfg.patch_len, cfg.stem_channels, cfg.d_model, self.n_patch, cfg.dropout,
                                              cfg.patch_pool, cfg.patch_pool_p)
        else:
            self.stem = None
            self.embed = PatchEmbedding(cfg.patch_len * d_feat, cfg.d_model, self.n_patch, cfg.dropout)
        self.promoter = (PromoterToken(cfg.promoter_bins, cfg.stem_channels or d_feat, cfg.d_model, cfg.dropout)
                         if cfg.promoter_bins else None)
        rms = embedding_rms(self.llm.word_embeddings())
        if cfg.alignment == "prototype":
            vocab = min(cfg.prototype_vocab or self.llm.vocab_size, self.llm.vocab_size)
            self.prototypes = TextPrototypes(vocab, cfg.n_prototypes)
            self.align = ReprogrammingLayer(cfg.d_model, cfg.n_heads, cfg.d_model // cfg.n_heads, m, rms, cfg.dropout,
                                            residual=cfg.align_residual)
        else:
            self.prototypes = None
            self.align = LinearAlignment(cfg.d_model, m, rms)
        self.scratch = None
        if cfg.backbone == "none":
            heads = int(getattr(self.llm.config, "num_attention_heads", 8))
            self.scratch = ScratchBackbone(m, heads, cfg.scratch_layers, self.n_tokens, cfg.dropout, rms)
        elif cfg.gradient_checkpointing:
            self.llm.set_gradient_checkpointing(True)
        self.head = Head(m, self.n_tokens, cfg.head_hidden, cfg.n_targets, cfg.dropout, cfg.head_standardise,
                         prompt_readout=cfg.use_prompt and cfg.prompt_readout, insulation=cfg.insulation,
                         tss_at=self.promoter_at, promoter_at=self.promoter_at if self.promoter is not None else None)

    def set_feature_norm(self, mean, std) -> None:
        """Per-feature mean and std fitted on the train split (std below 1e-6 is treated as 1)."""
        mean = torch.as_tensor(mean, dtype=self.feat_mean.dtype, device=self.feat_mean.device).reshape(-1)
        std = torch.as_tensor(std, dtype=self.feat_std.dtype, device=self.feat_std.device).reshape(-1)
        if mean.numel() != self.d_feat or std.numel() != self.d_feat:
            raise ValueError(f"feature stats have {mean.numel()}/{std.numel()} entries, the model {self.d_feat}")
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(_floored(std))

    def set_prompt_readout(self, mean: Tensor, std: Tensor, coef: Tensor, intercept: Tensor) -> None:
        """Fix the prompt readout: the summary is standardised with the train genes' ``mean``/``std`` [m] (std below
        1e-6 is treated as 1) and read by ``coef`` [t, m] + ``intercept`` [t], a ridge fit made before training
        (``gta.train.run.fit_annotation_prior``); the read is then frozen. Learnt jointly by Adam, 576 weights on
        1,600 noisy genes over-fit within an epoch and slowed the sequence part (docs/learning.md, entry 13)."""
        if not self.reads_prompt:
            raise ValueError("this model has no prompt readout (GTAConfig.prompt_readout with use_prompt)")
        linear = self.head.prompt[-1]  # frozen since the head was built
        with torch.no_grad():
            self.prompt_mean.copy_(torch.as_tensor(mean, dtype=self.prompt_mean.dtype).reshape(-1))
            self.prompt_std.copy_(_floored(torch.as_tensor(std, dtype=self.prompt_std.dtype).reshape(-1)))
            linear.weight.copy_(torch.as_tensor(coef, dtype=linear.weight.dtype).reshape(linear.weight.shape))
            linear.bias.copy_(torch.as_tensor(intercept, dtype=linear.bias.dtype).reshape(linear.bias.shape))

    def forward(self, features: Tensor, prompts: list[str] | None = None, return_attention: bool = False):
        """[b, n, f] (+ one prompt per row) -> [b, t]; with ``return_attention`` also a dict of
        ``alignment`` [b, h, p, k] (None for linear alignment) and ``pool`` [b, p] attention weights (of the window
        as given). In eval mode with ``cfg.mirror_average`` the output is the mean over the window and its mirror."""
        if self.cfg.mirror_average and not self.training:
            y = self._forward(features.flip(1), prompts)
            out = self._forward(features, prompts, return_attention)
            return (0.5 * (out[0] + y), out[1]) if return_attention else 0.5 * (out + y)
        return self._forward(features, prompts, return_attention)

    def _forward(self, features: Tensor, prompts: list[str] | None, return_attention: bool = False):
        if features.ndim != 3 or tuple(features.shape[1:]) != (self.n_bins, self.d_feat):
            shape = tuple(features.shape)
            raise ValueError(f"features of shape {shape}, expected [batch, {self.n_bins}, {self.d_feat}]")
        if self.cfg.use_prompt and (prompts is None or len(prompts) != len(features)):
            got = None if prompts is None else len(prompts)
            raise ValueError(f"use_prompt=True needs one prompt per row of {len(features)}, got {got}")
        x = (features - self.feat_mean) / self.feat_std  # [b, n, f]
        if self.stem is not None:
            x = self.stem(x)  # [b, n, c]
        patches = self.embed(self.patcher(x))  # [b, p, d]
        if self.promoter is not None:  # [b, p + 1, d]
            k = self.promoter_at
            patches = torch.cat([patches[:, :k], self.promoter(x)[:, None], patches[:, k:]], dim=1)
        protos = self.prototypes(self.llm.word_embeddings()) if self.prototypes is not None else None  # [k, m]
        tokens, attention = self.align(patches, protos, return_attention=True)  # [b, p, m]
        prefixes = list(prompts) if self.cfg.use_prompt else None
        if self.scratch is not None:
            hidden = self.scratch(tokens, self.llm, prefixes)
        else:
            hidden = self.llm(tokens, prefixes, use_cache_for_prefix=self.cfg.prefix_cache)  # [b, p, m]
        summary = None
        if self.reads_prompt:  # [b, m], standardised with the train genes' statistics
            summary = (self.prompt_summaries(prefixes).float() - self.prompt_mean) / self.prompt_std
        with torch.autocast(device_type=hidden.device.type, enabled=False):  # precision island for the readout
            y, pool = self.head(hidden.float(), None if summary is None else summary.float())  # [b, t], [b, p]
        return (y, {"alignment": attention, "pool": pool}) if return_attention else y

    def prompt_summaries(self, prefixes: list[str]) -> Tensor:
        """[b, m]: the frozen LLM's mean hidden state over each prompt; with no LLM (``backbone="none"``) the mean
        of the prompt's word embeddings, which is all of the LLM that ablation keeps."""
        if self.scratch is None:
            return self.llm.prompt_summaries(prefixes)
        with torch.no_grad():
            return torch.stack([self.llm.embed(self.llm.tokenize(p)).mean(0) for p in prefixes])

    def shard_llm(self, device_type: str) -> int:
        """Shard the frozen LLM's decoder across the process group (``FrozenLLM.shard_``); the scratch backbone
        runs no LLM layer, so there is nothing to shard. Returns the number of shards (1 = not sharded)."""
        return 1 if self.scratch is not None else self.llm.shard_(device_type)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Everything but the frozen LLM (which is outside the module tree): trainable weights + norm buffers."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_trainable_state_dict(self, sd: dict[str, Tensor]) -> None:
        self.load_state_dict(sd, strict=True)

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def positions(self) -> Tensor:
        """Bin index range [t, 2] (start, end) read by each sequence token: the patches (the last may be padded past
        n_bins), with the promoter token's span at ``promoter_at``."""
        start = torch.arange(self.n_patch) * self.cfg.patch_stride
        spans = torch.stack([start, start + self.cfg.patch_len], dim=1)
        if self.promoter is None:
            return spans
        k = self.promoter_at
        return torch.cat([spans[:k], torch.tensor([self.promoter.span(self.n_bins)]), spans[k:]])


def _floored(std: Tensor) -> Tensor:
    """A standard deviation with entries below 1e-6 (constant inputs) replaced by 1, so standardising divides by it
    safely; the one rule of the feature and prompt norms."""
    return torch.where(std > 1e-6, std, torch.ones_like(std))


def _resolve_llm(cfg: GTAConfig, llm: FrozenLLM) -> FrozenLLM:
    """The frozen LLM the model runs (loading one is the caller's job: ``gta.llm_loader.load_llm``); its random
    twin for ``backbone="random"``."""
    if llm is None:
        raise ValueError("GTA needs a loaded FrozenLLM (gta.llm_loader.load_llm); model/ reads no files")
    if cfg.backbone != "none" and cfg.llm_layers is not None and llm.n_layers != cfg.llm_layers:
        raise ValueError(f"the given LLM has {llm.n_layers} layers but cfg.llm_layers={cfg.llm_layers}")
    return random_twin(llm) if cfg.backbone == "random" else llm


def build_model(cfg: GTAConfig, d_feat: int, n_bins: int, llm: FrozenLLM) -> GTA:
    """The GTA model for features [*, n_bins, d_feat] around a loaded frozen LLM (``gta.llm_loader.load_llm``)."""
    return GTA(cfg, d_feat, n_bins, llm)


__all__ = ["GTA", "GTAConfig", "build_model", "Head", "ScratchBackbone"]
