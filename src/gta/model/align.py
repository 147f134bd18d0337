"""Patching and token alignment: per-bin features -> patch embeddings -> tokens in the frozen LLM's word space.

Axis legend: b = batch, n = bins, p = patches, l = bins per patch, f = feature dim, d = d_model, v = vocabulary,
k = prototypes, h = heads, e = per-head key dim, m = d_llm.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn


def n_patches(n_bins: int, patch_len: int, stride: int) -> int:
    """Number of patches covering ``n_bins`` bins (the last patch is completed by repeating the last bin)."""
    return 1 + math.ceil(max(n_bins - patch_len, 0) / stride)


class Patcher(nn.Module):
    """[b, n, f] -> [b, p, l*f]: windows of ``patch_len`` bins every ``stride`` bins, right-padded by repetition."""

    def __init__(self, patch_len: int, stride: int) -> None:
        super().__init__()
        if patch_len < 1 or stride < 1:
            raise ValueError(f"patch_len and stride must be >= 1, got {patch_len}, {stride}")
        self.patch_len, self.stride = patch_len, stride

    def forward(self, x: Tensor) -> Tensor:
        p = n_patches(x.shape[1], self.patch_len, self.stride)
        pad = (p - 1) * self.stride + self.patch_len - x.shape[1]
        if pad > 0:
            x = torch.cat([x, x[:, -1:].expand(-1, pad, -1)], dim=1)  # repeat the last bin
        x = x.unfold(1, self.patch_len, self.stride)  # [b, p, f, l]
        return rearrange(x, "b p f l -> b p (l f)")


class BinStem(nn.Module):
    """[b, n, f] -> [b, n, c]: one small convolutional encoder shared by every bin (as Enformer's stem and Time-LLM's
    token embedding share theirs): a width-``kernel`` convolution over neighbouring bins, GELU, a 1x1 convolution,
    GELU. A motif cluster is then recognised by the same weights wherever it sits in the window, instead of every
    bin offset of a patch learning its own weights from a few hundred genes."""

    def __init__(self, d_feat: int, channels: int, kernel: int = 3) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"stem kernel must be odd and >= 1, got {kernel}")
        self.net = nn.Sequential(nn.Conv1d(d_feat, channels, kernel, padding=kernel // 2), nn.GELU(),
                                 nn.Conv1d(channels, channels, 1), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


POOLS = ("sum", "gem")


class PooledPatchEmbedding(nn.Module):
    """[b, p, l*c] -> [b, p, d]: the stem's channels pooled over the patch's l bins, Linear, plus a learnt embedding
    per patch position (the patch's offset from the TSS).

    ``pool="sum"``: the sum, scaled by 1/sqrt(l). ``pool="gem"``: the generalised mean (mean of relu(h)^p)^(1/p), which
    lets a few strong bins (a motif cluster) outweigh many weak ones (chance hits) that a sum adds up
    (docs/learning.md, entries 15 and 17); p = 1 is the plain mean, p -> infinity the max."""

    def __init__(self, patch_len: int, channels: int, d_model: int, n_patch: int, dropout: float = 0.0,
                 pool: str = "sum", p: float = 2.0) -> None:
        super().__init__()
        if pool not in POOLS or p < 1:
            raise ValueError(f"patch pool must be one of {POOLS} with p >= 1, got {pool!r}, p={p}")
        self.patch_len, self.pool, self.p = patch_len, pool, float(p)
        self.proj = nn.Linear(channels, d_model)
        self.position = nn.Parameter(torch.randn(n_patch, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, patches: Tensor) -> Tensor:
        bins = rearrange(patches, "b p (l c) -> b p l c", l=self.patch_len)
        if self.pool == "sum":
            pooled = bins.sum(dim=2) / math.sqrt(self.patch_len)
        else:
            pooled = torch.relu(bins).pow(self.p).mean(dim=2).clamp_min(1e-6).pow(1 / self.p)
        return self.dropout(self.proj(pooled) + self.position)


class PromoterToken(nn.Module):
    """[b, n, c] -> [b, d]: the ``2 * bins`` bins around the TSS (index ``n // 2``) at full resolution, one weight
    per bin offset and channel, Linear, plus a learnt embedding: one token for the core promoter, whose sites act
    only within a few hundred bp of the TSS. Pooled into the 4-kb patches beside it, they were mixed with the
    promoter-like decoys 0.35-2 kb away and the model could not tell a broken TATA or YY1 site from noise
    (docs/learning.md, entry 42). The span is symmetric about the TSS, so a mirrored window maps it onto itself."""

    def __init__(self, bins: int, channels: int, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        if bins < 1:
            raise ValueError(f"promoter bins must be >= 1, got {bins}")
        self.bins = bins
        self.proj = nn.Linear(2 * bins * channels, d_model)
        self.position = nn.Parameter(torch.randn(d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def span(self, n_bins: int) -> tuple[int, int]:
        """Bin range [start, end) the token reads."""
        centre = n_bins // 2
        return centre - self.bins, centre + self.bins

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.span(x.shape[1])
        return self.dropout(self.proj(x[:, a:b].flatten(1)) + self.position)


class PatchEmbedding(nn.Module):
    """[b, p, l*f] -> [b, p, d]: Linear + a learnt embedding per patch position (TSS-relative: bins are in
    transcription order with the TSS at the centre, so patch index i always means the same offset from the TSS)."""

    def __init__(self, in_dim: int, d_model: int, n_patch: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, d_model)
        self.position = nn.Parameter(torch.randn(n_patch, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def forward(self, patches: Tensor) -> Tensor:
        return self.dropout(self.proj(patches) + self.position)


class TextPrototypes(nn.Module):
    """K prototypes as learnt mixtures of the frozen word embeddings: Linear_{V->K}(E^T)^T = W E, [k, m].

    There is no free [k, m] table: the prototypes are recomputed from E (once per forward in training; cached in
    eval / no_grad until W or E change). With ``vocab_size`` below E's rows, only the first ``vocab_size`` tokens
    are mixed (BPE ids come roughly in merge order, so these are the commonest pieces): a large saving for big V."""

    def __init__(self, vocab_size: int, n_prototypes: int) -> None:
        super().__init__()
        self.mapping = nn.Linear(vocab_size, n_prototypes, bias=False)  # weight [k, v]
        with torch.no_grad():  # start from K distinct words: a default init mixes ~all of V into K near-equal vectors
            self.mapping.weight.zero_()
            words = torch.randperm(vocab_size)[:n_prototypes]
            self.mapping.weight[torch.arange(len(words)), words] = 1.0
        self._cache: tuple[tuple, Tensor] | None = None

    def _key(self, E: Tensor) -> tuple:
        w = self.mapping.weight
        return (w.data_ptr(), w._version, w.dtype, E.data_ptr(), E._version, E.dtype, E.device)

    def forward(self, E: Tensor) -> Tensor:
        if E.shape[0] < self.mapping.in_features:
            raise ValueError(f"{E.shape[0]} word embeddings for a map over {self.mapping.in_features} tokens")
        E = E[: self.mapping.in_features]
        if self.training and torch.is_grad_enabled():
            self._cache = None
            return self.mapping.weight @ E.to(self.mapping.weight.dtype)  # [k, v] @ [v, m] -> [k, m]
        key = self._key(E)
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.mapping.weight @ E.to(self.mapping.weight.dtype))
        return self._cache[1]


class ReprogrammingLayer(nn.Module):
    """Multi-head cross-attention, queries = patches [b, p, d], keys = values = prototypes [k, m] -> [b, p, m].

    The output is RMS-normalised with a learnt gain that starts at the word embeddings' RMS, so aligned tokens have
    the scale the LLM expects (tiny inputs blow up RMSNorm gradients)."""

    def __init__(self, d_model: int, n_heads: int, d_keys: int, d_llm: int, embed_rms: float = 1.0,
                 dropout: float = 0.0, residual: bool = False) -> None:
        super().__init__()
        self.n_heads, self.d_keys = n_heads, d_keys
        # residual: a linear path from the patch beside the prototype mixture. Alone, the mixture starts almost
        # uniform over the prototypes, so a token first varies little with its patch, and training removes even that
        # (docs/learning.md, entry 2); the linear path carries the patch from the first step
        self.residual = nn.Linear(d_model, d_llm) if residual else None
        self.query_norm = nn.LayerNorm(d_model)  # word embeddings are small (RMS ~0.1): normalise both sides so
        self.proto_norm = nn.LayerNorm(d_llm)  # the attention scores start informative, not uniform
        self.query = nn.Linear(d_model, n_heads * d_keys)
        self.key = nn.Linear(d_llm, n_heads * d_keys)
        self.value = nn.Linear(d_llm, n_heads * d_keys)
        self.out = nn.Linear(n_heads * d_keys, d_llm)
        self.norm = _scaled_rmsnorm(d_llm, embed_rms)
        self.dropout = nn.Dropout(dropout)

    def forward(self, patches: Tensor, prototypes: Tensor, return_attention: bool = False):
        q = rearrange(self.query(self.query_norm(patches)), "b p (h e) -> b h p e", h=self.n_heads)
        protos = self.proto_norm(prototypes - prototypes.mean(dim=0, keepdim=True))  # drop the shared direction
        k = rearrange(self.key(protos), "k (h e) -> h k e", h=self.n_heads)
        v = rearrange(self.value(protos), "k (h e) -> h k e", h=self.n_heads)
        scores = torch.einsum("bhpe,hke->bhpk", q, k) / math.sqrt(self.d_keys)
        attn = scores.softmax(dim=-1)  # [b, h, p, k]
        mixed = self.out(rearrange(torch.einsum("bhpk,hke->bhpe", self.dropout(attn), v), "b h p e -> b p (h e)"))
        if self.residual is not None:
            mixed = mixed + self.residual(patches)
        tokens = self.norm(mixed)  # [b, p, m]
        return (tokens, attn) if return_attention else tokens


class LinearAlignment(nn.Module):
    """Ablation "no alignment": a plain Linear [b, p, d] -> [b, p, m] (same output scaling as the reprogramming)."""

    def __init__(self, d_model: int, d_llm: int, embed_rms: float = 1.0) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, d_llm)
        self.norm = _scaled_rmsnorm(d_llm, embed_rms)

    def forward(self, patches: Tensor, prototypes: Tensor | None = None, return_attention: bool = False):
        tokens = self.norm(self.proj(patches))
        return (tokens, None) if return_attention else tokens


def _scaled_rmsnorm(dim: int, scale: float) -> nn.RMSNorm:
    norm = nn.RMSNorm(dim, eps=1e-6)
    with torch.no_grad():
        norm.weight.fill_(scale)
    return norm


def embedding_rms(E: Tensor) -> float:
    """Root-mean-square of the word embedding table's entries (the scale aligned tokens are matched to)."""
    return float(E.detach().float().pow(2).mean().sqrt())
