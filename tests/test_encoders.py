"""Encoders: motif scores against a direct slow scan, backends agree, sparse recompute, registry, Enformer I/O."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gta.encoders import BaseEncoder, get_encoder, list_encoders, register_encoder
from gta.encoders.motif import MotifEncoder, _simd_available, pvalue_threshold, seq_to_index
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.io.genome import reverse_complement
from gta.io.jaspar import BACKGROUND, Motif, load_motifs

GEOM = Geometry(input_len=2048, bin_size=128, output_bins=12)  # crop of 2 bins on each side


def random_seq(rng: np.random.Generator, n: int, n_rate: float = 0.03) -> str:
    p = [(1 - n_rate) / 4] * 4 + [n_rate]
    return "".join(rng.choice(list("ACGTN"), p=p, size=n))


@pytest.fixture(scope="module")
def motifs():
    return load_motifs({"SPI1": "MA0080", "CTCF": "MA0139", "TBP": "MA0108", "IRF4": "MA1419"})


@pytest.fixture(scope="module")
def enc(motifs):
    return MotifEncoder(GEOM, motifs=motifs)


def slow_scan(e: MotifEncoder, seq: str) -> np.ndarray:
    """Python loops over centres and motif columns: the definition in the module docstring, nothing shared."""
    g, M = e.geometry, len(e.motifs)
    out = np.zeros((g.output_bins, 2 * M + 1))
    for m, mot in enumerate(e.motifs):
        lo = np.log2(mot.probs / BACKGROUND[:, None])
        w = mot.width
        for ob in range(g.output_bins):
            best, cnt = -np.inf, 0
            for c in range((g.crop_bins + ob) * g.bin_size, (g.crop_bins + ob + 1) * g.bin_size):
                fwd = rev = 0.0
                for j in range(w):
                    p = c - w // 2 + j
                    if 0 <= p < len(seq) and seq[p] in "ACGT":
                        fwd += lo["ACGT".index(seq[p]), j]
                        # reverse strand: the motif read on the complement, right to left
                        rev += lo[3 - "ACGT".index(seq[p]), w - 1 - j]
                best = max(best, fwd, rev)
                cnt += max(fwd, rev) >= e.thresholds[m]
            out[ob, m], out[ob, M + m] = best, cnt
    for ob in range(g.output_bins):
        b = seq[(g.crop_bins + ob) * g.bin_size : (g.crop_bins + ob + 1) * g.bin_size]
        out[ob, 2 * M] = (b.count("G") + b.count("C")) / g.bin_size
    return out


def test_motif_matches_slow_scan_on_random_sequences(enc, motifs):
    rng = np.random.default_rng(1)
    seqs = [random_seq(rng, GEOM.input_len) for _ in range(2)]
    # plant SPI1's consensus forward and reverse-complemented, and CTCF's at the window edge
    spi1, ctcf = motifs[0].consensus(), motifs[1].consensus()
    s = list(seqs[0])
    s[700 : 700 + len(spi1)] = spi1
    s[1200 : 1200 + len(spi1)] = reverse_complement(spi1)
    s[256 - 5 : 256 - 5 + len(ctcf)] = ctcf  # straddles the first output bin's left edge
    seqs[0] = "".join(s)
    got = enc.encode(seqs)
    assert got.shape == (2, GEOM.output_bins, 2 * len(motifs) + 1) and got.dtype == np.float32
    for i, seq in enumerate(seqs):
        np.testing.assert_allclose(got[i], slow_scan(enc, seq), atol=1e-4)
    best = motifs[0].log_odds().max(axis=0).sum()
    for pos in (700, 1200):  # both strands reach the consensus score in the bin of the site's centre
        ob = (pos + len(spi1) // 2) // 128 - GEOM.crop_bins
        assert got[0, ob, 0] == pytest.approx(best, abs=1e-4)
        assert got[0, ob, len(motifs)] >= 1


def test_reverse_complement_window_swaps_strands(enc):
    """Scoring the reverse-complemented window gives the same per-bin maxima, bins in reverse order, up to the
    assignment of centres of even-width motifs (checked here with odd widths only: SPI1 13, CTCF 15)."""
    rng = np.random.default_rng(2)
    seq = random_seq(rng, GEOM.input_len, n_rate=0.0)
    a, b = enc.encode([seq])[0], enc.encode([reverse_complement(seq)])[0][::-1]
    np.testing.assert_allclose(a[:, [0, 1]], b[:, [0, 1]], atol=1e-4)


def test_backends_agree(motifs):
    rng = np.random.default_rng(3)
    seqs = [random_seq(rng, GEOM.input_len) for _ in range(3)]
    a = MotifEncoder(GEOM, motifs=motifs, backend="numba").encode(seqs)
    b = MotifEncoder(GEOM, motifs=motifs, backend="torch", chunk_bins=5).encode(seqs)
    np.testing.assert_allclose(a, b, atol=1e-4)


needs_simd = pytest.mark.skipif(not _simd_available(GEOM.bin_size), reason="the simd kernel needs AVX-512F")


def masked_seq_with_sites(rng: np.random.Generator, motifs) -> str:
    """Random bases with N runs, soft-masked (lower-case) stretches, and every motif's consensus planted on both
    strands, some straddling bin edges."""
    s = list(random_seq(rng, GEOM.input_len, n_rate=0.05))
    for a in rng.integers(0, GEOM.input_len - 40, size=12):
        s[a : a + 30] = [c.lower() for c in s[a : a + 30]]
    s[1000:1010] = "N" * 10
    for m, pos in zip(motifs, rng.integers(200, GEOM.input_len - 250, size=len(motifs)), strict=True):
        site = m.consensus()
        s[pos : pos + len(site)] = site
        s[pos + 100 : pos + 100 + len(site)] = reverse_complement(site)
    return "".join(s)


def _simd_matches_table_and_slow_scan(geom, motifs, seqs, table_atol: float, slow_atol: float) -> None:
    """The simd kernel's features of ``seqs`` equal the table kernel's and the slow scan's, within the tolerances."""
    simd = MotifEncoder(geom, motifs=motifs, kernel="simd")
    got = simd.encode(seqs)
    np.testing.assert_allclose(got, MotifEncoder(geom, motifs=motifs, kernel="table").encode(seqs), atol=table_atol)
    for i, seq in enumerate(seqs):
        np.testing.assert_allclose(got[i], slow_scan(simd, seq), atol=slow_atol)


@needs_simd
def test_simd_kernel_equals_table_kernel_and_slow_scan():
    """The AVX-512 kernel against the portable one and the direct definition, on all default motifs (widths 7 to
    15, odd and even), with N and soft-masked bases: max to float32 rounding, counts exactly."""
    motifs = load_motifs()
    rng = np.random.default_rng(11)
    seqs = [masked_seq_with_sites(rng, motifs) for _ in range(3)]
    simd = MotifEncoder(GEOM, motifs=motifs, kernel="simd")
    assert simd.kernel == "simd"
    got = simd.encode(seqs)
    ref = MotifEncoder(GEOM, motifs=motifs, kernel="table").encode(seqs)
    M = len(motifs)
    np.testing.assert_allclose(got[..., :M], ref[..., :M], atol=1e-5)
    np.testing.assert_array_equal(got[..., M:], ref[..., M:])
    assert got[..., M : 2 * M].sum() >= 2 * len(seqs) * M  # the planted sites are counted: counts are compared
    for i, seq in enumerate(seqs):
        np.testing.assert_allclose(got[i], slow_scan(simd, seq), atol=1e-4)


@needs_simd
def test_simd_kernel_on_wide_motifs():
    """Motifs wider than a vector (41 and 64 columns, random probabilities) against the table kernel and the slow
    scan: the windows' reach past their bin stays inside the padded input."""
    rng = np.random.default_rng(13)
    wide = [Motif(f"W{w}", f"X{w}", rng.dirichlet(np.ones(4) * 0.5, size=w).T) for w in (41, 64)]
    seqs = [random_seq(rng, GEOM.input_len) for _ in range(2)]
    _simd_matches_table_and_slow_scan(GEOM, wide, seqs, table_atol=1e-4, slow_atol=1e-3)


@needs_simd
def test_simd_kernel_on_sparse_bins(motifs):
    """encode_bins with scattered bins (runs shorter and longer than a work item) equals the full encode."""
    rng = np.random.default_rng(12)
    seq = masked_seq_with_sites(rng, motifs)
    simd = MotifEncoder(GEOM, motifs=motifs, kernel="simd")
    bins = np.array([0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    np.testing.assert_allclose(simd.encode_bins(seq, bins), simd.encode([seq])[0][bins], atol=0)
    np.testing.assert_allclose(simd.encode_bins(seq, bins), MotifEncoder(GEOM, motifs=motifs, kernel="table")
                               .encode_bins(seq, bins), atol=1e-5)


def test_kernel_choice(motifs):
    assert MotifEncoder(GEOM, motifs=motifs).kernel == ("simd" if _simd_available(GEOM.bin_size) else "table")
    assert MotifEncoder(GEOM, motifs=motifs, backend="torch").kernel is None
    with pytest.raises(GtaInputError, match="unknown motif kernel"):
        MotifEncoder(GEOM, motifs=motifs, kernel="fast")
    odd = Geometry(input_len=48 * 20, bin_size=48, output_bins=12)  # 48 bp bins: not a multiple of 32
    with pytest.raises(GtaInputError, match="multiple of 32"):
        MotifEncoder(odd, motifs=motifs, kernel="simd")
    assert MotifEncoder(odd, motifs=motifs).kernel == "table"


def test_seq_to_index_maps_only_upper_case_acgt():
    """Soft-masked (lower-case) bases and anything but A, C, G, T score as N, as the slow scan defines."""
    assert seq_to_index(["ACGTNacgtRX-"]).tolist() == [[0, 1, 2, 3] + [4] * 8]
    assert seq_to_index(["ACGT", "TTGA"]).tolist() == [[0, 1, 2, 3], [3, 3, 2, 0]]
    with pytest.raises(ValueError):  # windows of different lengths do not make one array
        seq_to_index(["ACG", "ACGT"])


@needs_simd
def test_simd_kernel_at_window_edges(motifs):
    """No crop: windows of the first and last bins reach past the sequence, where bases count as N."""
    edge = Geometry(input_len=1536, bin_size=128, output_bins=12)
    rng = np.random.default_rng(14)
    seqs = [random_seq(rng, edge.input_len) for _ in range(2)]
    _simd_matches_table_and_slow_scan(edge, motifs, seqs, table_atol=1e-5, slow_atol=1e-4)


def test_pvalue_threshold_matches_enumeration():
    rng = np.random.default_rng(4)
    lo = rng.normal(0, 2, size=(4, 5))
    scores = np.array([sum(lo[b, j] for j, b in enumerate(bs)) for bs in itertools.product(range(4), repeat=5)])
    probs = np.array([np.prod([BACKGROUND[b] for b in bs]) for bs in itertools.product(range(4), repeat=5)])
    for p in (1e-3, 1e-2, 0.1):
        t = pvalue_threshold(lo, BACKGROUND, p)
        assert probs[scores >= t + 0.01].sum() <= p  # the tail above the threshold is within the p-value
        assert probs[scores >= t - 0.01].sum() > p * 0.5 or t == pytest.approx(scores.max(), abs=0.01)
    # unreachable p-values fall back to counting best matches only
    assert pvalue_threshold(lo, BACKGROUND, 1e-12) == pytest.approx(lo.max(axis=0).sum(), abs=1e-5)


def apply_snv(seq: str, pos: int) -> str:
    return seq[:pos] + ("A" if seq[pos] != "A" else "C") + seq[pos + 1 :]


@pytest.mark.parametrize("case", ["snv", "snv_edge", "two_snvs", "deletion_upstream", "insertion_downstream"])
def test_sparse_recompute_equals_full(enc, case):
    rng = np.random.default_rng(5)
    ref = random_seq(rng, GEOM.input_len)
    L, c = GEOM.input_len, GEOM.tss_index
    if case == "snv":
        alt, spans = apply_snv(ref, 900), [(900, 901)]
    elif case == "snv_edge":  # in the cropped margin, still within motif reach of the first output bin
        alt, spans = apply_snv(ref, 250), [(250, 251)]
    elif case == "two_snvs":
        alt = apply_snv(apply_snv(ref, 640), 1400)
        spans = [(640, 641), (1400, 1401)]
    elif case == "deletion_upstream":  # 7 bp deleted at 600: everything left of it shifts towards the TSS
        alt = "N" * 7 + ref[:600] + ref[607:]
        spans = [(0, 607)]
    else:  # 4 bp inserted at c + 300: everything right of it shifts away from the TSS
        alt = ref[: c + 300] + "GATT" + ref[c + 300 : L - 4]
        spans = [(c + 300, L)]
    assert len(alt) == L
    ref_feats = enc.encode([ref])[0]
    got = enc.encode_region(alt, ref_feats, spans)
    np.testing.assert_allclose(got, enc.encode([alt])[0], atol=1e-5)
    if case == "snv":  # only a couple of bins were recomputed
        assert len(enc.reach_bins(spans)) <= 2


def test_sequence_length_is_checked(enc):
    with pytest.raises(GtaInputError, match="input_len = 2048"):
        enc.encode(["ACGT" * 10])


def test_registry_lists_names_and_accepts_new_encoders():
    assert {"motif", "enformer"} <= set(list_encoders())
    with pytest.raises(GtaInputError, match="valid encoders: .*enformer.*motif"):
        get_encoder("borzoi")

    @register_encoder("test-gc")
    class GcEncoder(BaseEncoder):
        feature_names = ["gc"]  # type: ignore[assignment]

        def encode(self, seqs):
            idx = seq_to_index(seqs)[:, self.geometry.crop_bins * 128 : -self.geometry.crop_bins * 128]
            return ((idx == 1) | (idx == 2)).reshape(len(seqs), -1, 128).mean(-1, keepdims=True).astype(np.float32)

    e = get_encoder("test-gc", geometry=GEOM)
    assert e.name == "test-gc" and e.n_features == 1 and e.receptive_field_bp is None
    assert e.encode(["G" * GEOM.input_len])[0, :, 0].tolist() == [1.0] * GEOM.output_bins


def test_motif_metadata(enc, motifs):
    assert enc.receptive_field_bp == max(m.width for m in motifs) == 15
    assert enc.feature_names[:2] == ["SPI1.max", "CTCF.max"] and enc.feature_names[-1] == "gc"
    assert enc.config["motifs"]["SPI1"].startswith("MA0080")
    other = MotifEncoder(GEOM, motifs=motifs, pvalue=1e-3)
    assert other.weights_hash() != enc.weights_hash()
    with pytest.raises(GtaInputError, match="no --weights"):
        MotifEncoder(GEOM, motifs=motifs, weights="somewhere")


# -- Enformer ------------------------------------------------------------------------------------------------
EGEOM = Geometry(input_len=4096, bin_size=128, output_bins=16)


@pytest.fixture(scope="module")
def small_enformer(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from enformer_pytorch import Enformer

    from gta.encoders import save_enformer

    torch.manual_seed(0)
    model = Enformer.from_hparams(
        dim=48, depth=1, heads=2, dim_divisible_by=8, target_length=EGEOM.output_bins,
        output_heads={"human": 7, "mouse": 3},
    ).eval()
    folder = save_enformer(model, tmp_path_factory.mktemp("enformer"))
    return model, folder


def test_enformer_saved_and_loaded_matches_in_memory(small_enformer):
    import torch

    from gta.io.genome import one_hot

    model, folder = small_enformer
    rng = np.random.default_rng(6)
    seqs = [random_seq(rng, EGEOM.input_len) for _ in range(3)]
    enc = get_encoder("enformer", geometry=EGEOM, weights=folder, precision="fp32", cage_track=5, batch_size=2)
    got = enc.encode(seqs)
    assert got.shape == (3, EGEOM.output_bins, 2 * 48 + 1) and enc.receptive_field_bp is None
    with torch.inference_mode():
        x = torch.from_numpy(np.stack([one_hot(s) for s in seqs]))
        heads, emb = model(x, return_embeddings=True)
    np.testing.assert_allclose(got[..., :-1], emb.numpy(), atol=1e-5)
    np.testing.assert_allclose(got[..., -1], heads["human"][..., 5].numpy(), rtol=1e-4, atol=1e-6)
    assert enc.feature_names[-1] == "human_track5"
    assert len(enc.weights_hash()) == 16
    # a 2-bin shorter geometry crops symmetrically
    enc_short = get_encoder("enformer", geometry=Geometry(4096, 128, 12), weights=folder, precision="fp32")
    np.testing.assert_allclose(enc_short.encode(seqs[:1])[0], got[0, 2:-2, :-1], atol=1e-5)


def test_enformer_rc_average_is_strand_symmetric(small_enformer):
    _, folder = small_enformer
    rng = np.random.default_rng(7)
    seq = random_seq(rng, EGEOM.input_len, n_rate=0.0)
    enc = get_encoder("enformer", geometry=EGEOM, weights=folder, precision="fp32", rc_average=True)
    a = enc.encode([seq])[0]
    b = enc.encode([reverse_complement(seq)])[0][::-1]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_enformer_weights_are_checked(small_enformer, tmp_path):
    from safetensors.torch import load_file, save_file

    _, folder = small_enformer
    with pytest.raises(GtaInputError, match="--weights DIR"):
        get_encoder("enformer", geometry=EGEOM)
    with pytest.raises(GtaInputError, match="no config.json"):
        get_encoder("enformer", geometry=EGEOM, weights=tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((folder / "config.json").read_text())
    state = load_file(str(folder / "model.safetensors"))
    state["extra.weight"] = next(iter(state.values())).clone()
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(GtaInputError, match="unexpected"):
        get_encoder("enformer", geometry=EGEOM, weights=bad)
    with pytest.raises(GtaInputError, match="128-bp bins"):
        get_encoder("enformer", geometry=Geometry(4000, 100, 20), weights=folder)


def test_enformer_auto_device_follows_local_rank():
    """device="auto": cuda:{LOCAL_RANK} under torchrun (modulo the visible GPUs), cuda:0 without it, CPU without
    CUDA; explicit devices pass through. Pure function: no GPU needed."""
    from gta.encoders.enformer import choose_device

    assert choose_device("auto", True, {}, n_devices=4) == "cuda:0"
    assert choose_device("auto", True, {"LOCAL_RANK": "3"}, n_devices=4) == "cuda:3"
    assert choose_device("auto", True, {"LOCAL_RANK": "3", "RANK": "7"}, n_devices=8) == "cuda:3"  # local, not global
    assert choose_device("auto", True, {"LOCAL_RANK": "2"}, n_devices=1) == "cuda:0"  # CUDA_VISIBLE_DEVICES per worker
    assert choose_device("auto", False, {"LOCAL_RANK": "3"}, n_devices=4) == "cpu"
    assert choose_device("cpu", True, {"LOCAL_RANK": "3"}, n_devices=4) == "cpu"
    assert choose_device("cuda:1", True, {"LOCAL_RANK": "3"}, n_devices=4) == "cuda:1"
    with pytest.raises(GtaInputError, match="LOCAL_RANK must be an integer"):
        choose_device("auto", True, {"LOCAL_RANK": "zero"}, n_devices=2)
    with pytest.raises(GtaInputError, match=">= 0"):
        choose_device("auto", True, {"LOCAL_RANK": "-1"}, n_devices=2)


def test_enformer_encoder_auto_device_on_this_machine(small_enformer, monkeypatch):
    """The encoder hands choose_device the asked device, torch's CUDA availability and the process environment
    (LOCAL_RANK): without CUDA, "auto" is the CPU even with LOCAL_RANK set."""
    import torch

    from gta.encoders import enformer as ef

    _, folder = small_enformer
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_encoder("enformer", geometry=EGEOM, weights=folder, precision="fp32").device == "cpu"
    seen = {}

    def fake(device, cuda_available, env, n_devices=1):
        seen.update(device=device, cuda=cuda_available, rank=env.get("LOCAL_RANK"))
        return "cpu"

    monkeypatch.setattr(ef, "choose_device", fake)
    get_encoder("enformer", geometry=EGEOM, weights=folder, precision="fp32")
    assert seen == {"device": "auto", "cuda": False, "rank": "1"}
