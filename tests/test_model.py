"""gta.model.align + gta.model.gta: shapes, prototypes from E, frozen LLM, state round trip, ablation switches."""

from __future__ import annotations

import pytest
import torch

from gta.errors import GtaInputError
from gta.llm_loader import embedded_tokenizer, tiny_random_llm
from gta.model import GTA, GTAConfig, Patcher, ReprogrammingLayer, TextPrototypes, build_model
from gta.model.align import (
    BinStem,
    PatchEmbedding,
    PooledPatchEmbedding,
    PromoterToken,
    embedding_rms,
    n_patches,
)

D_FEAT, N_BINS = 5, 40  # patch_len 8 -> 5 patches
PROMPTS = ["Gene A is a kinase.", "Gene B.", "Gene A is a kinase."]


@pytest.fixture(scope="module")
def llm():
    return tiny_random_llm(num_layers=2, tokenizer=embedded_tokenizer())


def _cfg(**kw) -> GTAConfig:
    base = dict(llm="tiny-random", llm_layers=2, patch_len=8, patch_stride=8, d_model=16, n_prototypes=12,
                prototype_vocab=None, n_heads=4, head_hidden=16, dropout=0.0)
    return GTAConfig(**{**base, **kw})


def _features(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, N_BINS, D_FEAT, generator=torch.Generator().manual_seed(seed)) * 2 + 1


def test_patcher_shapes_and_right_padding():
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).reshape(2, 10, 3)
    out = Patcher(patch_len=4, stride=3)(x)  # 10 bins: patches at 0, 3, 6 (6..9 fits exactly)
    assert out.shape == (2, 3, 12) and n_patches(10, 4, 3) == 3
    torch.testing.assert_close(out[0, 1], x[0, 3:7].reshape(-1))  # (l f) order: bin-major
    padded = Patcher(patch_len=4, stride=4)(x)  # 10 bins -> 3 patches, last = bins 8, 9, 9, 9
    assert padded.shape == (2, 3, 12)
    torch.testing.assert_close(padded[1, 2], torch.cat([x[1, 8], x[1, 9], x[1, 9], x[1, 9]]))
    assert PatchEmbedding(12, 7, 3)(padded).shape == (2, 3, 7)


def test_bin_stem_shares_its_weights_across_bins():
    """The same bin content gives the same stem output wherever it sits; pooled patches sum their bins."""
    torch.manual_seed(0)
    stem = BinStem(d_feat=5, channels=4, kernel=3)
    x = torch.zeros(1, 20, 5)
    motif = torch.randn(3, 5)
    x[0, 3:6], x[0, 12:15] = motif, motif
    h = stem(x)
    assert h.shape == (1, 20, 4)
    torch.testing.assert_close(h[0, 3:6], h[0, 12:15])  # translation-equivariant: one set of weights for all bins
    with pytest.raises(ValueError, match="odd"):
        BinStem(5, 4, kernel=2)
    pool = PooledPatchEmbedding(patch_len=4, channels=4, d_model=6, n_patch=5)
    patches = Patcher(4, 4)(h)  # [1, 5, 16]
    out = pool(patches)
    assert out.shape == (1, 5, 6)
    summed = h[0].reshape(5, 4, 4).sum(1) / 2  # / sqrt(patch_len)
    torch.testing.assert_close(out[0], pool.proj(summed) + pool.position)


def test_gem_pooling_lets_one_strong_bin_outweigh_many_weak_ones(llm):
    """patch_pool="gem": (mean of relu(h)^p)^(1/p) per channel; p = 1 is the mean of relu(h), large p nears the max.
    Against the sum, a patch with one strong bin beats a patch of many weak bins of the same total."""
    pool = PooledPatchEmbedding(patch_len=4, channels=1, d_model=1, n_patch=2, pool="gem", p=3.0)
    with torch.no_grad():
        pool.proj.weight.fill_(1.0)
        pool.proj.bias.zero_()
        pool.position.zero_()
    strong, weak = torch.tensor([4.0, 0, 0, 0]), torch.tensor([1.0, 1, 1, 1])  # the same sum
    out = pool(torch.stack([strong, weak]).reshape(1, 2, 4))[0, :, 0]
    torch.testing.assert_close(out, torch.tensor([(64 / 4) ** (1 / 3), 1.0]))
    assert out[0] > out[1]
    negative = pool(-torch.ones(1, 2, 4))[0, :, 0]  # relu first: negative bins count as zero
    assert torch.all(negative < 0.02)
    with pytest.raises(ValueError, match="pool"):
        PooledPatchEmbedding(4, 1, 1, 2, pool="max")
    with pytest.raises(GtaInputError, match="patch_pool"):
        _cfg(patch_pool="max")
    model = GTA(_cfg(patch_pool="gem", patch_pool_p=2.0), D_FEAT, N_BINS, llm=llm)
    assert model.embed.pool == "gem" and model(_features(), PROMPTS).shape == (3, 1)


def test_stem_is_the_default_and_zero_channels_gives_the_per_offset_linear(llm):
    assert isinstance(GTA(_cfg(), D_FEAT, N_BINS, llm=llm).stem, BinStem)
    legacy = GTA(_cfg(stem_channels=0), D_FEAT, N_BINS, llm=llm)
    assert legacy.stem is None and isinstance(legacy.embed, PatchEmbedding)
    assert legacy(_features(), PROMPTS).shape == (3, 1)


def test_prototypes_are_a_function_of_the_frozen_embeddings():
    E = torch.randn(50, 8)
    protos = TextPrototypes(vocab_size=50, n_prototypes=6)
    assert [p.shape for p in protos.parameters()] == [(6, 50)]  # only the V -> K map is learnt
    out = protos(E)
    torch.testing.assert_close(out, protos.mapping.weight @ E)
    assert not torch.allclose(protos(E * 2 + 1), out)
    protos.eval()
    with torch.no_grad():
        first = protos(E)
        assert protos(E) is first  # cached at inference
        E.mul_(3)  # the table changed: the cache must follow
        torch.testing.assert_close(protos(E), protos.mapping.weight @ E)


def test_prototype_vocab_limits_the_mixed_tokens(llm):
    model = GTA(_cfg(prototype_vocab=100), D_FEAT, N_BINS, llm=llm)
    assert model.prototypes.mapping.weight.shape == (12, 100)
    E = llm.word_embeddings().detach().clone()
    before = model.prototypes(E)
    E[100:] += 1.0  # tokens beyond the first 100 do not take part
    torch.testing.assert_close(model.prototypes(E), before)
    assert model(_features(), PROMPTS).shape == (3, 1)


def test_reprogramming_layer_shapes_attention_and_scale():
    layer = ReprogrammingLayer(d_model=16, n_heads=4, d_keys=4, d_llm=24, embed_rms=0.3)
    tokens, attn = layer(torch.randn(2, 5, 16), torch.randn(9, 24), return_attention=True)
    assert tokens.shape == (2, 5, 24) and attn.shape == (2, 4, 5, 9)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 4, 5))
    torch.testing.assert_close(tokens.pow(2).mean(-1).sqrt(), torch.full((2, 5), 0.3), atol=1e-4, rtol=1e-4)


def test_gta_forward_shapes_and_attention(llm):
    model = build_model(_cfg(n_targets=2), D_FEAT, N_BINS, llm=llm)
    y, att = model(_features(), PROMPTS, return_attention=True)
    assert y.shape == (3, 2) and y.dtype == torch.float32
    # 5 patches + the promoter token (bins 16-24, between the patches that meet at the TSS, bin 20)
    assert model.n_tokens == 6 and att["alignment"].shape == (3, 4, 6, 12) and att["pool"].shape == (3, 6)
    torch.testing.assert_close(att["pool"].sum(-1), torch.ones(3))
    assert model.positions().tolist() == [[0, 8], [8, 16], [16, 24], [16, 24], [24, 32], [32, 40]]
    assert not [n for n, p in model.named_parameters() if tuple(p.shape) == (12, llm.d_llm)]  # no free prototype table
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(3, N_BINS + 1, D_FEAT), PROMPTS)
    with pytest.raises(ValueError, match="one prompt per row"):
        model(_features())


def test_promoter_token_reads_only_the_bins_around_the_tss(llm):
    """The promoter token sees the central bins one by one: the prediction's gradient reaches a bin's features
    through it only inside its span, and it tells a site at the TSS from the same site elsewhere in the patch."""
    token = PromoterToken(bins=2, channels=D_FEAT, d_model=6)
    x = torch.randn(2, N_BINS, D_FEAT, requires_grad=True)
    token(x).sum().backward()
    reached = x.grad.abs().sum(dim=(0, 2)) > 0
    assert token.span(N_BINS) == (18, 22) and reached.nonzero().flatten().tolist() == [18, 19, 20, 21]
    moved = torch.zeros(1, N_BINS, D_FEAT)
    moved[0, 18, 0] = 1.0
    other = torch.zeros(1, N_BINS, D_FEAT)
    other[0, 20, 0] = 1.0  # the same "site" two bins further on: a different token
    assert not torch.allclose(token(moved), token(other))
    without = build_model(_cfg(promoter_bins=0), D_FEAT, N_BINS, llm=llm)
    assert without.n_tokens == without.n_patch == 5 and without.promoter is None
    with pytest.raises(GtaInputError, match="promoter_bins=21 needs 42 bins"):
        build_model(_cfg(promoter_bins=21), D_FEAT, N_BINS, llm=llm)
    with pytest.raises(GtaInputError, match="promoter_bins=-1 must be >= 0"):
        _cfg(promoter_bins=-1)


def test_insulation_gate_shields_only_what_lies_beyond_a_boundary():
    """A boundary at one token lowers the gate of every token further from the TSS on its side, and nothing else;
    the promoter token is neither a boundary nor gated, and a mirrored window gets the mirrored gate."""
    from gta.model.gta import insulation_gate
    log_open = torch.zeros(1, 6)  # tokens 0-2 upstream, 3-5 downstream (TSS between 2 and 3)
    log_open[0, 1] = -2.0  # a boundary 2 tokens upstream
    log_open[0, 4] = -1.0  # and one 2 tokens downstream
    gate = insulation_gate(log_open, centre=3)
    assert gate.tolist() == [[-2.0, 0.0, 0.0, 0.0, 0.0, -1.0]]  # a boundary does not gate itself
    assert torch.equal(insulation_gate(log_open.flip(-1), 3), gate.flip(-1))
    with_token = torch.cat([log_open[:, :3], torch.full((1, 1), -9.0), log_open[:, 3:]], 1)  # promoter at 3
    gated = insulation_gate(with_token, centre=3, skip=3)
    assert gated.tolist() == [[-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]]


def test_insulated_head_moves_weight_inside_a_boundary(llm):
    """GTAConfig.insulation: the head's pooling weights include the gate, so a strong boundary one token upstream
    of the TSS takes the weight off the token beyond it; off, the head has no boundary weights (run folders written
    before it load unchanged)."""

    class Fixed(torch.nn.Module):  # boundary logits set by the test: token 1 a strong boundary
        def forward(self, h):
            logits = torch.full(h.shape[:2], -30.0)
            logits[:, 1] = 30.0
            return logits[..., None]

    model = build_model(_cfg(insulation=True, promoter_bins=2), D_FEAT, N_BINS, llm=llm).eval()
    head = model.head
    assert head.promoter_at == head.tss_at == model.promoter_at == 3 and model.n_tokens == 6
    with torch.no_grad():
        head.score.weight.zero_()
        head.score.bias.zero_()
    head.boundary = Fixed()
    _, weights = head(torch.randn(2, 6, llm.d_llm), torch.zeros(2, llm.d_llm))
    assert weights[:, 0].max() < 1e-9  # beyond the boundary
    assert torch.allclose(weights[:, 1:], torch.full((2, 5), 0.2), atol=1e-6)  # the boundary itself and the rest
    y = model(_features(), PROMPTS)
    assert y.shape == (3, 1) and torch.isfinite(y).all()
    off = build_model(_cfg(promoter_bins=2), D_FEAT, N_BINS, llm=llm)
    assert off.head.boundary is None and not [k for k in off.state_dict() if "boundary" in k]


@pytest.mark.parametrize("field, value, message", [("d_model", -8, "d_model=-8 must be >= 1"),
                                                   ("n_heads", 0, "n_heads=0 must be >= 1"),
                                                   ("patch_len", 0, "patch_len=0 must be >= 1"),
                                                   ("stem_channels", -1, "stem_channels=-1 must be >= 0"),
                                                   ("dropout", 1.0, r"dropout=1.0 must be in \[0, 1\)")])
def test_model_config_names_the_value_out_of_range(field, value, message):
    """A negative width used to read "d_model=-8 is not divisible by n_heads" or fail deep inside torch."""
    with pytest.raises(GtaInputError, match=message):
        _cfg(**{field: value})


def test_llm_frozen_during_training(llm):
    model = GTA(_cfg(), D_FEAT, N_BINS, llm=llm)
    before = {k: v.clone() for k, v in llm.hf.state_dict().items()}
    trainable_before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for step in range(3):
        loss = (model(_features(seed=step), PROMPTS) - 1).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in llm.hf.parameters())
    assert all(torch.equal(before[k], v) for k, v in llm.hf.state_dict().items())
    assert model.prototypes.mapping.weight.grad is not None and model.embed.proj.weight.grad is not None
    changed = [k for k, v in model.trainable_state_dict().items() if not torch.equal(v, trainable_before[k])]
    assert "prototypes.mapping.weight" in changed and "head.out.2.weight" in changed
    assert not llm.training


def test_trainable_state_dict_round_trip(llm):
    model = GTA(_cfg(), D_FEAT, N_BINS, llm=llm)
    model.set_feature_norm(torch.full((D_FEAT,), 1.0), torch.full((D_FEAT,), 2.0))
    model.set_prompt_readout(torch.randn(llm.d_llm), torch.rand(llm.d_llm) + 0.5, torch.randn(1, llm.d_llm),
                             torch.tensor([0.3]))
    with torch.no_grad():
        model.head.out[2].bias.fill_(0.7)
    sd = model.trainable_state_dict()
    assert "feat_mean" in sd and "feat_std" in sd
    assert not [k for k in sd if "embed_tokens" in k or "layers." in k]  # nothing of the LLM
    # saved but not trained: the standardisers' statistics and the annotation prior (its statistics and ridge read)
    fixed = {"feat_mean", "feat_std", "prompt_mean", "prompt_std"} | {k for k in sd if k.startswith("head.proj.0.")}
    fixed |= {"head.prompt.0.weight", "head.prompt.0.bias"}
    assert {k.rsplit(".", 1)[-1] for k in fixed} == {"feat_mean", "feat_std", "prompt_mean", "prompt_std",
                                                     "running_mean", "running_var", "num_batches_tracked", "weight",
                                                     "bias"}
    assert sum(v.numel() for k, v in sd.items() if k not in fixed) == model.n_trainable()
    torch.manual_seed(123)
    other = GTA(_cfg(), D_FEAT, N_BINS, llm=llm)
    model.eval()
    other.eval()
    with torch.no_grad():
        want = model(_features(), PROMPTS)
        assert not torch.allclose(other(_features(), PROMPTS), want)
        other.load_trainable_state_dict(sd)
        assert torch.equal(other(_features(), PROMPTS), want)


def test_feature_norm_is_applied(llm):
    model = GTA(_cfg(), D_FEAT, N_BINS, llm=llm).eval()
    x = _features()
    with torch.no_grad():
        plain = model(x, PROMPTS)
        model.set_feature_norm(torch.full((D_FEAT,), 1.0), torch.full((D_FEAT,), 2.0))
        torch.testing.assert_close(model(x * 2 + 1, PROMPTS), plain)
    with pytest.raises(ValueError, match="entries"):
        model.set_feature_norm(torch.zeros(3), torch.ones(3))


def test_mirror_average_is_the_mean_over_the_window_and_its_mirror_at_inference_only(llm):
    torch.manual_seed(0)
    averaged = GTA(_cfg(), D_FEAT, N_BINS, llm=llm).eval()
    plain = GTA(_cfg(mirror_average=False), D_FEAT, N_BINS, llm=llm).eval()
    plain.load_trainable_state_dict(averaged.trainable_state_dict())
    x = _features()
    with torch.no_grad():
        one, other = plain(x, PROMPTS), plain(x.flip(1), PROMPTS)
        assert (one - other).abs().max() > 1e-5  # not mirror-symmetric by construction (float error ~1e-7)
        torch.testing.assert_close(averaged(x, PROMPTS), 0.5 * (one + other))
        torch.testing.assert_close(averaged(x.flip(1), PROMPTS), averaged(x, PROMPTS))  # symmetric by averaging
        y, att = averaged(x, PROMPTS, return_attention=True)
        torch.testing.assert_close(y, 0.5 * (one + other))
        torch.testing.assert_close(att["pool"], plain(x, PROMPTS, return_attention=True)[1]["pool"])
    averaged.train()
    plain.train()
    torch.manual_seed(1)
    train_avg = averaged(x, PROMPTS)
    torch.manual_seed(1)
    torch.testing.assert_close(train_avg, plain(x, PROMPTS))  # training sees one window, as it is given


def test_prefix_cache_switch_gives_same_outputs(llm):
    cached = GTA(_cfg(), D_FEAT, N_BINS, llm=llm).eval()
    uncached = GTA(_cfg(prefix_cache=False), D_FEAT, N_BINS, llm=llm).eval()
    uncached.load_trainable_state_dict(cached.trainable_state_dict())
    with torch.no_grad():
        torch.testing.assert_close(cached(_features(), PROMPTS), uncached(_features(), PROMPTS), atol=1e-4, rtol=1e-4)


def test_ablation_switches(llm):
    full = GTA(_cfg(), D_FEAT, N_BINS, llm=llm)
    keys = set(full.trainable_state_dict())
    linear = GTA(_cfg(alignment="linear"), D_FEAT, N_BINS, llm=llm)
    lkeys = set(linear.trainable_state_dict())
    assert "prototypes.mapping.weight" in keys and not any(k.startswith("prototypes.") for k in lkeys)
    assert "align.proj.weight" in lkeys and linear.n_trainable() < full.n_trainable()
    _, att = linear(_features(), PROMPTS, return_attention=True)
    assert att["alignment"] is None

    random = GTA(_cfg(backbone="random"), D_FEAT, N_BINS, llm=llm)
    assert set(random.trainable_state_dict()) == keys and random.llm is not llm
    assert random.llm.n_layers == llm.n_layers and not torch.equal(random.llm.word_embeddings(), llm.word_embeddings())

    scratch = GTA(_cfg(backbone="none"), D_FEAT, N_BINS, llm=llm)
    skeys = set(scratch.trainable_state_dict())
    assert skeys - keys and all(k.startswith("scratch.") for k in skeys - keys)
    y = scratch(_features(), PROMPTS)
    y.sum().backward()
    assert scratch.scratch.encoder.layers[0].linear1.weight.grad is not None and y.shape == (3, 1)

    no_prompt = GTA(_cfg(use_prompt=False), D_FEAT, N_BINS, llm=llm).eval()
    no_prompt.load_trainable_state_dict({k: v for k, v in full.trainable_state_dict().items()
                                         if not k.startswith(("head.prompt.", "prompt_"))})  # no annotation prior
    full.eval()
    with torch.no_grad():
        a = no_prompt(_features())
        torch.testing.assert_close(no_prompt(_features(), ["ignored"] * 3), a)
        assert not torch.allclose(full(_features(), PROMPTS), full(_features(), ["Other text."] * 3))


def test_config_validation_and_layer_mismatch(llm):
    with pytest.raises(GtaInputError, match="backbone"):
        GTAConfig(backbone="gpt")
    with pytest.raises(GtaInputError, match="alignment"):
        GTAConfig(alignment="none")
    with pytest.raises(ValueError, match="layers"):
        GTA(_cfg(llm_layers=5), D_FEAT, N_BINS, llm=llm)
    assert embedding_rms(llm.word_embeddings()) > 0


def test_gradient_checkpointing_switch_same_gradients(llm):
    plain = GTA(_cfg(), D_FEAT, N_BINS, llm=tiny_random_llm(num_layers=2, tokenizer=llm.tokenizer))
    ckpt = GTA(_cfg(gradient_checkpointing=True), D_FEAT, N_BINS, llm=tiny_random_llm(num_layers=2,
                                                                                      tokenizer=llm.tokenizer))
    ckpt.load_trainable_state_dict(plain.trainable_state_dict())
    grads = []
    for model in (plain, ckpt):
        model(_features(), PROMPTS).sum().backward()
        grads.append(model.embed.proj.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("alignment", ["prototype", "linear"])
def test_alignment_learns_a_planted_distal_signal(llm, alignment):
    """Regression: with a default Linear init the prototypes were near-identical mixtures of the whole
    vocabulary, attention was uniform and the output constant whatever the input."""
    torch.manual_seed(0)
    n_bins, d_feat = 32, 4
    x = torch.randn(48, n_bins, d_feat)
    y = x[:, 24:28, 0].sum(1)  # a signal far from the centre bin
    cfg = _cfg(alignment=alignment, use_prompt=False, patch_len=4, patch_stride=4, dropout=0.0, prototype_vocab=2048)
    model = GTA(cfg, d_feat, n_bins, llm=llm)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    first = None
    for _ in range(60):
        loss = ((model(x)[:, 0] - y) ** 2).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with torch.no_grad():
        assert model(x)[:, 0].std() > 0.3 * y.std()


def test_empty_batch_on_a_sharded_llm_still_runs_the_layers(llm, monkeypatch):
    """A rank with no rows must still run (and back-propagate through) every layer, or the other ranks' layer
    collectives would wait for it forever; unsharded, an empty batch costs nothing."""
    from gta.train.config import TrainConfig
    from gta.train.module import GTAModule

    cfg = GTAConfig(llm="tiny-random", llm_layers=2, patch_len=4, patch_stride=4, d_model=16, n_prototypes=16,
                    prototype_vocab=None, n_heads=2, head_hidden=16, use_prompt=False)
    module = GTAModule(build_model(cfg, d_feat=3, n_bins=16, llm=llm), TrainConfig(model=cfg), 0.0, 1.0)
    empty = {"features": torch.zeros(0, 16, 3), "prompts": []}
    assert module.encode(empty).shape == (0,) and not module.encode(empty).requires_grad
    calls = []
    layer = llm.hf.layers[0]
    hook = layer.register_forward_hook(lambda *_: calls.append("forward"))
    monkeypatch.setattr(llm, "_shard_world", 2)
    h = module.encode(empty)
    assert h.shape == (0,) and h.requires_grad and calls == ["forward"]
    (h.sum() * 0.0).backward()
    assert all(p.grad is not None for p in module.model.align.parameters())  # backward went through the LLM
    hook.remove()


def test_prompt_summary_is_the_mean_hidden_state_of_the_prompt(llm):
    """FrozenLLM.prompt_summaries: the last hidden states of a plain forward over the prompt's tokens, averaged;
    the same whether or not the prompt's KV cache was already held."""
    ids = llm.tokenize(PROMPTS[0])[None]
    with torch.no_grad():
        want = llm.hf(input_ids=ids, use_cache=False).last_hidden_state[0].mean(0)
    llm.clear_prefix_cache()
    got = llm.prompt_summaries(PROMPTS)
    assert got.shape == (3, llm.d_llm)
    torch.testing.assert_close(got[0], want)
    torch.testing.assert_close(got[2], got[0])
    assert not torch.allclose(got[1], got[0])
    llm.encode_prefix(PROMPTS[1])
    torch.testing.assert_close(llm.prompt_summaries(PROMPTS[1:2])[0], got[1])


def test_gta_learns_what_the_annotation_says(llm):
    """Targets set by one word of the prompt, features pure noise: GTA with the (optional) prompt readout ranks
    held-out genes by that word; a model that ignored the prompt could not, the features carry nothing."""
    torch.manual_seed(0)
    words = ["ribosome", "interferon", "kinase", "unknown"]
    value = {w: float(i) for i, w in enumerate(words)}

    def batch(n, seed):
        g = torch.Generator().manual_seed(seed)
        picks = [words[int(i)] for i in torch.randint(0, len(words), (n,), generator=g)]
        prompts = [f"Gene G{seed}_{i}. Processes: {w} activity." for i, w in enumerate(picks)]
        return _features(n, seed), prompts, torch.tensor([value[w] for w in picks])

    model = GTA(_cfg(), D_FEAT, N_BINS, llm=llm)  # the annotation prior is on by default
    assert model.head.prompt is not None
    assert GTA(_cfg(prompt_readout=False), D_FEAT, N_BINS, llm=llm).head.prompt is None
    assert GTA(_cfg(use_prompt=False, prompt_readout=True), D_FEAT, N_BINS, llm=llm).head.prompt is None
    _fit_prior(model, *batch(64, 999)[1:])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(60):
        x, prompts, y = batch(16, step)
        loss = torch.nn.functional.mse_loss(model(x, prompts)[:, 0], (y - 1.5) / 1.1)
        if step == 0:  # the prior alone already fits the training genes: the readout, not the rest, reads the word
            assert loss.item() < 0.4  # a constant scores ~1.0 (the targets have unit variance)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, prompts, y = batch(48, 1000)
    with torch.no_grad():
        pred = model(x, prompts)[:, 0]
    rho = torch.corrcoef(torch.stack([pred.argsort().argsort().float(), y.argsort().argsort().float()]))[0, 1]
    assert rho > 0.8, f"held-out rank correlation {rho:.3f}"


def _fit_prior(model, prompts, y):
    """The annotation prior as gta.train.run.fit_annotation_prior fits it: ridge on standardised summaries."""
    from sklearn.linear_model import RidgeCV

    z = model.prompt_summaries(prompts).double()
    mean, std = z.mean(0), z.std(0, unbiased=False)
    ridge = RidgeCV(alphas=[0.1, 1.0, 10.0]).fit(((z - mean) / std).numpy(), ((y - 1.5) / 1.1).numpy())
    model.set_prompt_readout(mean, std, torch.as_tensor(ridge.coef_)[None], torch.as_tensor([ridge.intercept_]))


def test_prompt_readout_is_fixed_and_independent_of_the_batch(llm):
    """The readout standardises the prompt summary with statistics fixed from the train genes and reads it with
    fixed weights (set_prompt_readout): a gene's annotation term is the same whichever genes share its batch, in
    training mode too; it is frozen, and saved with the weights."""
    prompts = [f"Gene G{i}. Processes: {w} activity." for i, w in enumerate(["ribosome", "kinase", "interferon"] * 4)]
    model = GTA(_cfg(prompt_readout=True), D_FEAT, N_BINS, llm=llm)
    summaries = model.prompt_summaries(prompts)
    coef = torch.randn(1, llm.d_llm)
    model.set_prompt_readout(summaries.mean(0), summaries.std(0), coef, torch.tensor([0.5]))
    torch.testing.assert_close(model.prompt_mean, summaries.mean(0))
    readout = model.head.prompt[-1]
    assert not any(p.requires_grad for p in readout.parameters())
    x = _features(12, seed=3)

    def term(rows):  # the readout's share of the output: with its weights minus without them, same batch
        with torch.no_grad():
            torch.manual_seed(0)
            full = model(x[rows], [prompts[i] for i in rows])[:, 0]
            saved = readout.weight.clone(), readout.bias.clone()
            readout.weight.zero_()
            readout.bias.zero_()
            torch.manual_seed(0)
            without = model(x[rows], [prompts[i] for i in rows])[:, 0]
            readout.weight.copy_(saved[0])
            readout.bias.copy_(saved[1])
        return full - without

    model.train()
    torch.testing.assert_close(term([0, 1, 2])[0], term([0, 5, 7, 9, 11])[0])
    z = (summaries[0] - summaries.mean(0)) / summaries.std(0)
    torch.testing.assert_close(term([0, 1, 2])[0], coef[0] @ z + 0.5, rtol=1e-4, atol=1e-4)
    assert {"prompt_mean", "prompt_std", "head.prompt.0.weight"} <= set(model.trainable_state_dict())
    with pytest.raises(ValueError, match="no prompt readout"):
        without = GTA(_cfg(prompt_readout=False), D_FEAT, N_BINS, llm=llm)
        without.set_prompt_readout(summaries.mean(0), summaries.std(0), coef, torch.zeros(1))


def test_scratch_backbone_starts_as_the_identity_and_trains_at_its_own_rate(llm):
    """backbone="none": the stack starts as the identity on the unit-RMS stream (the head first sees the patch
    tokens), and the optimiser gives its weights TrainConfig.scratch_lr of the rate (docs/learning.md, entry 12)."""
    from gta.train.config import TrainConfig
    from gta.train.module import optimiser_groups

    model = GTA(_cfg(backbone="none"), D_FEAT, N_BINS, llm=llm).train()
    seen = {}
    model.align.register_forward_hook(lambda _m, _i, out: seen.__setitem__("tokens", out[0]))
    model.scratch.register_forward_hook(lambda _m, _i, out: seen.__setitem__("hidden", out))
    model(_features(), PROMPTS)
    torch.testing.assert_close(seen["hidden"], seen["tokens"] / model.scratch.embed_rms)
    groups = optimiser_groups(model, TrainConfig(lr=1e-3, scratch_lr=0.1))
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(1e-4)
    scratch_ids = {id(p) for p in model.scratch.parameters()}
    assert {id(p) for p in groups[1]["params"]} == scratch_ids
    assert not scratch_ids & {id(p) for p in groups[0]["params"]}
    assert len(optimiser_groups(GTA(_cfg(), D_FEAT, N_BINS, llm=llm), TrainConfig())) == 1
