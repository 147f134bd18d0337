"""The frozen LLM: the wrapper, prompt KV caching, sharding and random twins (loading it from files, the GGUF
de-quantisation cache and its provenance hash live in :mod:`gta.llm_loader`; this module reads no files).

`FrozenLLM` wraps the base model of a Llama-style causal LM (``model.model``) and its tokenizer. The HF module is
kept *outside* the PyTorch module tree: it never appears in ``parameters()``, ``state_dict()`` or ``apply()`` of an
owner, yet follows ``.to(device / dtype)``. It always stays in eval mode.

Prompt caching: ``encode_prefix(prompt)`` runs the prompt once under no_grad and keeps its KV cache (LRU, bounded
in bytes). ``forward(embeds, prefixes)`` lets the continuation attend to the cached prompts through a read-only cache
(prompts of different lengths are left-padded, masked, and positions continue after each prompt), so the stored
cache is never mutated and gradient checkpointing can safely recompute layers.

Sharding (``shard_``, used by the ``fsdp`` training strategy): each decoder layer becomes one FSDP2 unit
(``fully_shard``) over all ranks, so a device holds 1/W of the decoder and gathers a layer only while it runs it.
Every layer forward is then a collective: all ranks must run the same passes in the same order. The prompt cache
keeps that true by agreeing on each batch's missing prompts across ranks and computing their union everywhere.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from transformers import AutoModel, DynamicCache
from transformers.cache_utils import DynamicLayer

_TWIN_SEED = 0x7A1E5


class _PromptLayer(DynamicLayer):
    """One layer of a read-only prompt cache: `update` returns prompt ++ new states and stores nothing."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        super().__init__()
        self.keys, self.values = keys, values
        self.device = keys.device
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


def _read_only_cache(kv: list[tuple[Tensor, Tensor]]) -> DynamicCache:
    cache = DynamicCache()
    cache.layers = [_PromptLayer(k, v) for k, v in kv]
    return cache


def _cache_bytes(cache: DynamicCache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


class FrozenLLM(nn.Module):
    """A frozen decoder (Llama-style base model) + tokenizer; ``d_llm`` and ``vocab_size`` come from its config."""

    def __init__(self, base: nn.Module, tokenizer, source: str = "", max_prefix_bytes: int = 2 << 30) -> None:
        super().__init__()
        base.requires_grad_(False)
        base.eval()
        self.__dict__["_hf"] = base  # not registered: invisible to parameters(), state_dict(), apply()
        self.tokenizer = tokenizer
        self.config = base.config
        self.d_llm: int = int(base.config.hidden_size)
        self.vocab_size: int = int(base.get_input_embeddings().num_embeddings)
        self.n_layers: int = len(base.layers)
        self.source = source
        self.max_prefix_bytes = max_prefix_bytes
        self._prefixes: OrderedDict[str, DynamicCache] = OrderedDict()
        self._prefix_bytes = 0
        self._summaries: dict[str, Tensor] = {}  # prompt -> mean last hidden state [d_llm] (small: never evicted)
        self._checkpointed: dict[int, object] = {}
        self._identity: dict | None = None  # provenance, filled once by gta.llm_loader.llm_identity
        self._shard_world = 1  # > 1 once shard_() has split the decoder layers across ranks
        self.training = False

    # ---- frozen-module plumbing -------------------------------------------------------------------------------
    @property
    def hf(self) -> nn.Module:
        """The wrapped HF base model (frozen, eval mode)."""
        return self._hf

    def train(self, mode: bool = True) -> FrozenLLM:  # noqa: ARG002 - always eval: no dropout, fixed behaviour
        self.training = False
        self._hf.eval()
        return self

    def _apply(self, fn, recurse: bool = True):
        before = self._weights_key()
        self._hf._apply(fn)
        if self._weights_key() != before:  # cached KV is tied to the old device / dtype / storage
            self.clear_prefix_cache()  # a no-op move (Lightning's setup and teardown on CPU) keeps it
        return super()._apply(fn, recurse)

    def _weights_key(self) -> list[tuple]:
        """Where each frozen weight lives: (device, dtype, storage address), to tell a real move from a no-op."""
        local = (p.to_local() if hasattr(p, "to_local") else p for p in self._hf.parameters())
        return [(t.device, t.dtype, t.data_ptr()) for t in local]

    @property
    def dtype(self) -> torch.dtype:
        return self.word_embeddings().dtype

    @property
    def device(self) -> torch.device:
        return self.word_embeddings().device

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each decoder layer in backward (non-reentrant checkpointing); safe with the read-only cache."""
        for layer in self._hf.layers:
            if enabled and id(layer) not in self._checkpointed:
                self._checkpointed[id(layer)] = layer.forward
                layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
            elif not enabled and id(layer) in self._checkpointed:
                layer.forward = self._checkpointed.pop(id(layer))

    # ---- sharding ------------------------------------------------------------------------------------------------
    @property
    def sharded(self) -> bool:
        """True once :meth:`shard_` split the decoder layers across ranks (every layer forward is a collective)."""
        return self._shard_world > 1

    def shard_(self, device_type: str = "cpu") -> int:
        """Shard each decoder layer's frozen weights across the initialised process group (FSDP2, one unit per
        layer, resharded after each use); the embedding table and final norm stay whole on every rank, since the
        text prototypes read E outside any layer. Returns the world size (1 = nothing to do)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1 or self.sharded:
            return max(self._shard_world, 1)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device_type, (dist.get_world_size(),))
        for layer in self._hf.layers:
            fully_shard(layer, mesh=mesh, reshard_after_forward=True)
        self._shard_world = dist.get_world_size()
        self.clear_prefix_cache()
        return self._shard_world

    def decoder_numel(self) -> tuple[int, int]:
        """(elements of the decoder layers held on this rank, elements of the whole decoder layers)."""
        local = full = 0
        for p in self._hf.layers.parameters():
            full += p.numel()
            local += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
        return local, full

    # ---- embeddings and tokens --------------------------------------------------------------------------------
    def word_embeddings(self) -> Tensor:
        """The frozen input embedding table E: [V, d_llm]."""
        return self._hf.get_input_embeddings().weight

    def embed(self, ids: Tensor) -> Tensor:
        return self._hf.get_input_embeddings()(ids)

    def tokenize(self, prompt: str) -> Tensor:
        """Token ids [n] of a prompt (the tokenizer's own special tokens, no padding)."""
        ids = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if not ids:
            raise ValueError("empty prompt: it has no tokens")
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    # ---- prompt cache ------------------------------------------------------------------------------------------
    def encode_prefix(self, prompt: str, recompute: bool = False) -> DynamicCache:
        """KV cache of one prompt (computed once under no_grad, then kept; LRU-bounded in bytes). Read-only."""
        cache = None if recompute else self._prefixes.get(prompt)
        if cache is not None:
            self._prefixes.move_to_end(prompt)
            return cache
        with torch.no_grad():
            out = self._hf(input_ids=self.tokenize(prompt)[None], use_cache=True)
        cache = out.cache
        self._summaries[prompt] = out.last_hidden_state[0].mean(0)
        if prompt in self._prefixes:
            self._prefix_bytes -= _cache_bytes(self._prefixes.pop(prompt))
        self._prefixes[prompt] = cache
        self._prefix_bytes += _cache_bytes(cache)
        while self._prefix_bytes > self.max_prefix_bytes and len(self._prefixes) > 1:
            _, old = self._prefixes.popitem(last=False)
            self._prefix_bytes -= _cache_bytes(old)
        return cache

    def clear_prefix_cache(self) -> None:
        self._prefixes.clear()
        self._summaries.clear()
        self._prefix_bytes = 0

    def prompt_summaries(self, prefixes: list[str]) -> Tensor:
        """[B, d_llm]: each prompt's last hidden states averaged over its tokens (computed with its KV cache, once;
        no gradient: the LLM and the prompt are fixed). Under a sharded decoder every rank takes part in computing
        the prompts any rank lacks, as for the KV caches."""
        unique = list(dict.fromkeys(prefixes))
        if self.sharded:
            self._agreed_prefixes(unique)
        for p in unique:
            if p not in self._summaries:
                self.encode_prefix(p, recompute=True)
        return torch.stack([self._summaries[p] for p in prefixes])

    def _batched_prefix(self, prefixes: list[str]) -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
        """Per layer (K, V) [B, kv_heads, P_max, head_dim], left-padded with zeros; prompt lengths [B]."""
        unique = list(dict.fromkeys(prefixes))
        caches = self._agreed_prefixes(unique) if self.sharded else [self.encode_prefix(p) for p in unique]
        lengths = torch.tensor([c.get_seq_length() for c in caches], device=self.device)
        row = torch.tensor([unique.index(p) for p in prefixes], device=self.device)
        p_max = int(lengths.max())
        kv = []
        for layer in range(len(caches[0].layers)):
            pair = []
            for attr in ("keys", "values"):
                parts = [getattr(c.layers[layer], attr) for c in caches]  # each [1, kv_heads, P_u, head_dim]
                if len(parts) == 1:
                    stacked = parts[0].expand(len(prefixes), -1, -1, -1)
                else:
                    padded = parts[0].new_zeros(len(parts), *parts[0].shape[1:-2], p_max, parts[0].shape[-1])
                    for u, t in enumerate(parts):
                        padded[u, :, p_max - t.shape[-2] :] = t[0]
                    stacked = padded[row]
                pair.append(stacked)
            kv.append((pair[0], pair[1]))
        return kv, lengths[row]

    def _agreed_prefixes(self, unique: list[str]) -> list[DynamicCache]:
        """Sharded decoder: every rank computes the union of all ranks' missing prompts, in one sorted order, so
        the layer collectives line up; this batch's caches are held here so eviction cannot drop one midway."""
        import torch.distributed as dist

        held = {p: self.encode_prefix(p) for p in unique if p in self._prefixes}  # cache hits: no forward
        missing = [p for p in unique if p not in held]
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, missing)
        union = sorted(set().union(*gathered))
        fresh = {p: self.encode_prefix(p, recompute=True) for p in union}
        return [fresh[p] if p in fresh else held[p] for p in unique]

    # ---- forward -----------------------------------------------------------------------------------------------
    def forward(
        self, inputs_embeds: Tensor, prefixes: list[str] | None = None, use_cache_for_prefix: bool = True
    ) -> Tensor:
        """Hidden states [B, T, d_llm] of the continuation ``inputs_embeds`` [B, T, d_llm] after each row's prompt."""
        x = inputs_embeds.to(self.dtype)
        if prefixes is not None and len(prefixes) != x.shape[0]:
            raise ValueError(f"{len(prefixes)} prompts for a batch of {x.shape[0]}")
        if not prefixes:
            hidden = self._hf(inputs_embeds=x, use_cache=False).last_hidden_state
        elif use_cache_for_prefix:
            hidden = self._forward_cached(x, prefixes)
        else:
            hidden = self._forward_uncached(x, prefixes)
        return hidden.to(inputs_embeds.dtype)

    def _forward_cached(self, x: Tensor, prefixes: list[str]) -> Tensor:
        kv, lengths = self._batched_prefix(prefixes)
        p_max, t = kv[0][0].shape[-2], x.shape[1]
        positions = lengths[:, None] + torch.arange(t, device=x.device)  # continue after each prompt
        mask = None
        if bool((lengths != p_max).any()):
            prompt_ok = torch.arange(p_max, device=x.device)[None] >= (p_max - lengths)[:, None]
            mask = torch.cat([prompt_ok, prompt_ok.new_ones(len(prefixes), t)], dim=1).long()
        out = self._hf(inputs_embeds=x, cache=_read_only_cache(kv), position_ids=positions, attention_mask=mask,
                       use_cache=False)
        return out.last_hidden_state

    def _forward_uncached(self, x: Tensor, prefixes: list[str]) -> Tensor:
        """Reference path: prompt embeddings (left-padded) concatenated in front, one uncached pass."""
        ids = [self.tokenize(p) for p in prefixes]
        lengths = torch.tensor([len(i) for i in ids], device=x.device)
        p_max, t = int(lengths.max()), x.shape[1]
        prompt = x.new_zeros(len(ids), p_max, x.shape[-1])
        for b, i in enumerate(ids):
            prompt[b, p_max - len(i) :] = self.embed(i).to(x.dtype)
        mask = positions = None
        if bool((lengths != p_max).any()):
            pad = (p_max - lengths)[:, None]
            index = torch.arange(p_max + t, device=x.device)[None]
            mask = (index >= pad).long()
            positions = (index - pad).clamp(min=0)
        out = self._hf(inputs_embeds=torch.cat([prompt, x], dim=1), attention_mask=mask, position_ids=positions,
                       use_cache=False)
        return out.last_hidden_state[:, p_max:]


def keep_first_layers_(base: nn.Module, num_layers: int) -> None:
    """Cut a decoder to its first ``num_layers`` blocks, in place (config updated to match)."""
    base.layers = base.layers[:num_layers]
    base.config.num_hidden_layers = num_layers
    if getattr(base.config, "layer_types", None):
        base.config.layer_types = base.config.layer_types[:num_layers]


def random_twin(llm: FrozenLLM, seed: int = 0) -> FrozenLLM:
    """Same architecture, config and tokenizer as ``llm`` but randomly initialised (the "random backbone" ablation)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TWIN_SEED + seed)  # offset: a twin never replays the seed of tiny_random_llm
        base = AutoModel.from_config(llm.config).to(device=llm.device, dtype=llm.dtype)
    return FrozenLLM(base, llm.tokenizer, source=f"random:{llm.source}")
