"""gta.model.llm: frozen wrapper, prompt KV cache (cached == uncached), loading, GGUF cache, random twins."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from gta.errors import GtaInputError
from gta.llm_loader import dequantised_folder, embedded_tokenizer, llm_identity, load_llm, tiny_random_llm
from gta.model.llm import FrozenLLM, random_twin

PROMPTS = [
    "Gene SPI1 (protein coding) encodes a transcription factor of myeloid and B cells.",
    "Gene X.",
    "Gene SPI1 (protein coding) encodes a transcription factor of myeloid and B cells.",
    "Another gene, of medium length prompt.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return embedded_tokenizer()


@pytest.fixture(scope="module")
def tiny64(tokenizer) -> FrozenLLM:
    return tiny_random_llm(num_layers=3, tokenizer=tokenizer).double()


def _inputs(llm: FrozenLLM, b: int = 4, t: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, llm.d_llm, generator=g, dtype=llm.dtype) * 0.5


def test_frozen_wrapper_hides_weights_and_stays_in_eval(tiny64):
    owner = torch.nn.Sequential(tiny64)
    assert list(owner.parameters()) == [] and owner.state_dict() == {}
    assert all(not p.requires_grad for p in tiny64.hf.parameters())
    owner.train()
    assert not tiny64.training and not tiny64.hf.training
    assert tiny64.d_llm == tiny64.config.hidden_size == 64
    assert tiny64.vocab_size == len(tiny64.tokenizer) == tiny64.word_embeddings().shape[0]


def test_prefix_cache_equals_uncached_float64_mixed_lengths(tiny64):
    x = _inputs(tiny64).requires_grad_()
    lengths = {len(tiny64.tokenize(p)) for p in PROMPTS}
    assert len(lengths) == 3  # the batch really mixes prompt lengths (and repeats one)
    cached = tiny64(x, PROMPTS)
    uncached = tiny64(x, PROMPTS, use_cache_for_prefix=False)
    alone = torch.cat([tiny64(x[i : i + 1], [p], use_cache_for_prefix=False) for i, p in enumerate(PROMPTS)])
    assert cached.shape == x.shape
    assert (cached - uncached).abs().max() < 1e-10
    assert (cached - alone).abs().max() < 1e-10  # padding changes nothing
    (g_cached,) = torch.autograd.grad(cached.square().sum(), x)
    (g_uncached,) = torch.autograd.grad(uncached.square().sum(), x)
    assert g_cached.abs().sum() > 0 and (g_cached - g_uncached).abs().max() < 1e-9
    # the prompt matters: another prompt, or none, changes the continuation's hidden states
    assert (tiny64(x, ["Something else entirely."] * 4) - cached).abs().max() > 1e-3
    assert (tiny64(x) - cached).abs().max() > 1e-3


def test_prefix_cache_equals_uncached_float32(tokenizer):
    llm = tiny_random_llm(num_layers=2, tokenizer=tokenizer)
    x = _inputs(llm)
    assert (llm(x, PROMPTS) - llm(x, PROMPTS, use_cache_for_prefix=False)).abs().max() < 1e-4


def test_stored_prompt_cache_is_never_mutated(tiny64):
    tiny64.clear_prefix_cache()
    cache = tiny64.encode_prefix(PROMPTS[1])
    n = cache.get_seq_length()
    before = [layer.keys.clone() for layer in cache.layers]
    tiny64(_inputs(tiny64), PROMPTS)
    tiny64(_inputs(tiny64, b=2, t=9), PROMPTS[:2])
    assert tiny64.encode_prefix(PROMPTS[1]) is cache and cache.get_seq_length() == n
    assert all(torch.equal(b, layer.keys) for b, layer in zip(before, cache.layers, strict=True))


def test_prefix_cache_is_lru_bounded_in_bytes(tokenizer):
    llm = tiny_random_llm(num_layers=1, tokenizer=tokenizer)
    one = llm.encode_prefix("first prompt")
    size = sum(t.numel() * t.element_size() for layer in one.layers for t in (layer.keys, layer.values))
    llm.max_prefix_bytes = int(size * 2.5)
    llm.encode_prefix("second prompt")
    llm.encode_prefix("first prompt")  # touch: now the most recent
    llm.encode_prefix("third prompt")
    assert list(llm._prefixes) == ["first prompt", "third prompt"]
    assert llm._prefix_bytes <= llm.max_prefix_bytes


def test_gradient_checkpointing_same_gradients(tokenizer):
    llm = tiny_random_llm(num_layers=2, tokenizer=tokenizer).double()
    x = _inputs(llm).requires_grad_()
    (g_plain,) = torch.autograd.grad(llm(x, PROMPTS).sum(), x)
    llm.set_gradient_checkpointing(True)
    (g_ckpt,) = torch.autograd.grad(llm(x, PROMPTS).sum(), x)
    llm.set_gradient_checkpointing(False)
    assert (g_plain - g_ckpt).abs().max() < 1e-10


def test_dtype_move_clears_prompt_cache(tokenizer):
    llm = tiny_random_llm(num_layers=1, tokenizer=tokenizer)
    llm.encode_prefix("a prompt")
    llm.to(torch.float64)
    assert llm.dtype == torch.float64 and len(llm._prefixes) == 0
    assert llm.encode_prefix("a prompt").layers[0].keys.dtype == torch.float64


def test_no_op_move_keeps_prompt_cache(tokenizer):
    """Lightning moves the model to its (same) device at setup and calls .cpu() at teardown: neither may drop the
    cached prompts, which cost a full LLM pass each to rebuild."""
    llm = tiny_random_llm(num_layers=1, tokenizer=tokenizer)
    kept = llm.encode_prefix("a prompt")
    nn.Sequential(llm).to(llm.device).cpu().float()
    assert llm.encode_prefix("a prompt") is kept
    llm.to_empty(device=llm.device)  # same device, new storage: the old KV no longer matches the weights
    assert len(llm._prefixes) == 0


def test_random_twin_same_architecture_new_weights(tokenizer):
    llm = tiny_random_llm(num_layers=2, tokenizer=tokenizer, seed=3)
    twin, twin2 = random_twin(llm, seed=1), random_twin(llm, seed=1)
    assert twin.d_llm == llm.d_llm and twin.n_layers == llm.n_layers and twin.tokenizer is llm.tokenizer
    assert not torch.equal(twin.word_embeddings(), llm.word_embeddings())
    assert torch.equal(twin.word_embeddings(), twin2.word_embeddings())  # seeded
    assert twin.source.startswith("random:")


def test_load_local_hf_folder_keeps_first_layers(tmp_path, tokenizer):
    llm = tiny_random_llm(num_layers=3, tokenizer=tokenizer)
    llm.hf.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    two = load_llm(str(tmp_path), num_layers=2)
    assert two.n_layers == 2 and two.d_llm == 64
    torch.testing.assert_close(two.hf.layers[1].mlp.up_proj.weight, llm.hf.layers[1].mlp.up_proj.weight)
    ident = llm_identity(two)
    assert ident["n_layers"] == 2 and ident["d_llm"] == 64 and len(ident["sha256"]) == 64
    with pytest.raises(GtaInputError, match="layers"):
        load_llm(str(tmp_path), num_layers=9)


def test_load_llm_rejects_bad_sources(tmp_path):
    with pytest.raises(GtaInputError, match="not found"):
        load_llm(str(tmp_path / "missing"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(GtaInputError, match="GGUF"):
        load_llm(str(tmp_path / "weights.bin"))
    with pytest.raises(GtaInputError, match="config.json"):
        load_llm(str(tmp_path))


def test_embedded_llm_is_real():
    """The shipped SmolLM2 (first load de-quantises into the user cache, about 15 s; afterwards < 1 s)."""
    llm = load_llm("embedded")
    assert (llm.n_layers, llm.d_llm, llm.vocab_size) == (30, 576, 49152)
    ids = llm.tokenize("The capital of France is")
    with torch.no_grad():
        hidden = llm(llm.embed(ids)[None])
    assert llm.tokenizer.decode(int((hidden[0, -1] @ llm.word_embeddings().T).argmax())).strip() == "Paris"
    short = load_llm("embedded", num_layers=2)
    assert short.n_layers == 2 and llm_identity(short)["sha256"] == llm_identity(llm)["sha256"]
    x = torch.randn(2, 5, 576) * 0.13
    with torch.no_grad():
        cached, plain = short(x, PROMPTS[:2]), short(x, PROMPTS[:2], use_cache_for_prefix=False)
    assert (cached - plain).abs().max() < 1e-4 * max(1.0, float(plain.abs().max()))


@pytest.mark.slow
def test_gguf_dequantisation_is_cached_and_faithful(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from gta.resources import embedded_llm_gguf

    monkeypatch.setenv("GTA_CACHE_DIR", str(tmp_path))
    first = load_llm("embedded", num_layers=2)
    folder = dequantised_folder(embedded_llm_gguf())
    assert folder.parent == tmp_path / "llm" and (folder / "gta-source.json").exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp dir left
    start = time.perf_counter()
    second = load_llm("embedded", num_layers=2)
    assert time.perf_counter() - start < 5
    gguf = embedded_llm_gguf()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).model
    ids = first.tokenize("Gene SPI1 is expressed in B cells.")[None]
    with torch.no_grad():
        want = direct(input_ids=ids).last_hidden_state
        direct.layers = direct.layers[:2]
        direct.config.num_hidden_layers = 2
        want2 = direct(input_ids=ids).last_hidden_state
    full = load_llm("embedded")
    with torch.no_grad():
        torch.testing.assert_close(full(full.embed(ids)), want)
        torch.testing.assert_close(second(second.embed(ids)), want2)
