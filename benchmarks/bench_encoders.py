"""Encoder throughput: motif encoder vs memelite FIMO and lightmotif (Mbp/s, same motifs and sequence), Enformer.

Run: ``.venv/bin/python benchmarks/bench_encoders.py [--threads 2] [--also-threads 1] [--seqs 8] [--enformer-seqs 1]
[--device cpu|cuda] [--precision bf16|fp16|fp32] [--out DIR]``. Writes ``encoders.json`` and ``encoders.md`` into
``benchmarks/results`` (or ``--out``); the Enformer section records the device it ran on (the GPU's name for
``cuda``) and its precision, and ``--enformer-seqs 0`` keeps the last Enformer measurement, marked with its own date.
Timings are best-of-``--rounds`` with the contenders interleaved, after one warm-up call each (numba compilation is
not timed); every scanner gets ``--threads`` threads. The motif encoder starts from the window strings; memelite
from ready one-hot arrays and reports p < 1e-4 hits per motif and strand (comparable work, not identical);
lightmotif scores both strands with gta's log-odds (N = 0) and its score tracks are pooled with numpy into the
encoder's exact features (max and count per 128-bp bin), which the run checks against the encoder's.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import time
from pathlib import Path

from gta.provenance import cpu_model, machine, source_commit

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--also-threads", type=int, nargs="*", default=[1],
                    help="motif benchmark repeated on these thread counts too")
    ap.add_argument("--seqs", type=int, default=8, help="motif benchmark: windows of 114,688 bp (Enformer output span)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--enformer-seqs", type=int, default=1, help="full-size Enformer forward passes (0 = skip)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="Enformer device (cuda: the current GPU, cuda:LOCAL_RANK under torchrun)")
    ap.add_argument("--precision", choices=("bf16", "fp16", "fp32"), default="bf16",
                    help="Enformer precision (bf16/fp16: autocast)")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for encoders.json and encoders.md")
    args = ap.parse_args()
    out_dir: Path = args.out
    os.environ["NUMBA_NUM_THREADS"] = str(max([args.threads, *args.also_threads]))
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import memelite
    import numba
    import numpy as np
    import torch

    from gta.encoders import EnformerEncoder
    from gta.geometry import Geometry

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    g = Geometry()
    rng = np.random.default_rng(0)
    p = [0.295, 0.205, 0.205, 0.295]
    seqs = ["".join(rng.choice(list("ACGT"), p=p, size=g.input_len)) for _ in range(args.seqs)]
    motif = bench_motifs(g, seqs, args.threads, args.rounds)
    also = {str(t): bench_motifs(g, seqs, t, args.rounds) for t in args.also_threads if 0 < t != args.threads}
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    result: dict = {
        "machine": {
            **machine(),
            "threads": args.threads,
            "numba": numba.__version__,
            "memelite": getattr(memelite, "__version__", "?"),
            "lightmotif": importlib.metadata.version("lightmotif"),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "commit": source_commit(dirty=True, missing="?"),
            "load_average_1min": os.getloadavg()[0],  # shared machine: a high load depresses every row
        },
        "motif": motif,
    }
    if also:
        result["motif_at_threads"] = also
    if args.enformer_seqs > 0:
        from enformer_pytorch import Enformer

        from gta.encoders.enformer import choose_device

        if args.device == "cuda" and not torch.cuda.is_available():
            ap.error("--device cuda: torch sees no CUDA device")
        device = choose_device("auto", True, os.environ, torch.cuda.device_count()) if args.device == "cuda" else "cpu"
        device_name = torch.cuda.get_device_name(device) if device != "cpu" else cpu_model()

        torch.manual_seed(0)
        model = Enformer.from_hparams(dim=1536, depth=11, heads=8, target_length=896)
        n_params = sum(p.numel() for p in model.parameters())
        ef = EnformerEncoder(g, model=model, precision=args.precision, batch_size=1, device=device)
        if device != "cpu":  # CUDA context, cuDNN autotuning and allocator warm-up are not timed
            ef.encode(seqs[:1])
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for s in seqs[: args.enformer_seqs]:
            t = time.perf_counter()
            out = ef.encode([s])
            times.append(time.perf_counter() - t)
        import resource

        result["enformer"] = {
            "params_m": n_params / 1e6,
            "device": device,
            "device_name": device_name,
            "precision": args.precision + (" autocast" if args.precision != "fp32" else ""),
            "input_bp": g.input_len,
            "output_shape": list(out.shape[1:]),
            "seconds_per_sequence": times,
            "sequences_per_s": len(times) / sum(times),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "measured": result["machine"]["date"],
        }
        if device != "cpu":
            result["enformer"]["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1024**3
    elif (out_dir / "encoders.json").exists():  # keep the last Enformer measurement when it was skipped
        previous = json.loads((out_dir / "encoders.json").read_text())
        if "enformer" in previous:  # not re-run: it keeps the date it was measured on
            result["enformer"] = {"measured": previous["machine"]["date"], **previous["enformer"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "encoders.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "encoders.md").write_text(render(result))
    print(render(result))


ROWS = {  # key: label in the table
    "motif_numba": "gta motif encoder, numba backend, {kernel} kernel (max + count per 128-bp bin)",
    "motif_numba_table": "gta motif encoder, numba backend, portable table kernel",
    "motif_torch": "gta motif encoder, torch GEMM backend",
    "memelite_fimo": "memelite FIMO (p < 1e-4 hits)",
    "lightmotif_features": "lightmotif score tracks, pooled with numpy into the encoder's features",
    "lightmotif_tracks": "lightmotif score tracks only (both strands, no pooling)",
}


def bench_motifs(g, seqs: list[str], threads: int, rounds: int) -> dict:
    """Mbp/s of every scanner on the same windows and ``threads`` threads (best of rounds, interleaved), and
    lightmotif's agreement with the encoder."""
    import memelite
    import numba
    import numpy as np
    import torch

    from gta.encoders import MotifEncoder
    from gta.io.genome import one_hot

    numba.set_num_threads(threads)  # memelite's and the encoder's numba kernels
    torch.set_num_threads(threads)
    span, lo = g.output_span, g.crop_bins * g.bin_size
    enc = MotifEncoder(g, gc=False, backend="numba", threads=threads)
    enc_table = MotifEncoder(g, gc=False, backend="numba", kernel="table", threads=threads)
    enc_t = MotifEncoder(g, gc=False, backend="torch", threads=threads)
    X = np.stack([one_hot(s[lo : lo + span]).T for s in seqs]).astype(np.float32)  # [N, 4, L], the scanned region
    motifs = {m.name: m.probs.astype(np.float32) for m in enc.motifs}
    light = LightmotifScanner(enc, threads)
    mbp = len(seqs) * span / 1e6
    contenders = {  # name: (call, Mbp it scans)
        "motif_numba": (lambda: enc.encode(seqs), mbp),
        "motif_numba_table": (lambda: enc_table.encode(seqs), mbp),
        "motif_torch": (lambda: enc_t.encode(seqs[:2]), len(seqs[:2]) * span / 1e6),  # slow: two windows
        "memelite_fimo": (lambda: memelite.fimo(motifs, X, threshold=1e-4), mbp),
        "lightmotif_features": (lambda: light.features(seqs), mbp),
        "lightmotif_tracks": (lambda: light.tracks(seqs), mbp),
    }
    for call, _ in contenders.values():  # warm-up: numba compilation and first-touch allocations
        call()
    runs: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, (call, size) in contenders.items():
            t = time.perf_counter()
            call()
            runs[name].append(size / (time.perf_counter() - t))
    best = {k: max(v) for k, v in runs.items()}
    ours, theirs = enc.encode(seqs), light.features(seqs)
    M = len(enc.motifs)
    return {
        "threads": threads,
        "n_motifs": M,
        "motifs": [m.name for m in enc.motifs],
        "max_width": enc.max_width,
        "mbp_scanned": mbp,
        "numba_kernel": enc.kernel,
        "mbps_best": best,
        "mbps_all_rounds": runs,
        "ratio_over_memelite": {k: v / best["memelite_fimo"] for k, v in best.items()},
        "ratio_numba_over_memelite": best["motif_numba"] / best["memelite_fimo"],
        "ratio_numba_over_lightmotif_features": best["motif_numba"] / best["lightmotif_features"],
        "lightmotif_vs_encoder": {
            "max_abs_diff_of_max": float(np.abs(ours[..., :M] - theirs[..., :M]).max()),
            "count_mismatches": int((ours[..., M:] != theirs[..., M:]).sum()),
            "hits_counted": int(ours[..., M:].sum()),
        },
    }


class LightmotifScanner:
    """The encoder's motifs as lightmotif ScoringMatrix pairs (forward, reverse complement), split over threads
    (lightmotif releases the GIL; each thread needs its own striped sequence)."""

    def __init__(self, enc, threads: int) -> None:
        import lightmotif

        self.enc, self.threads = enc, threads
        self.pssms = []
        for lo in enc.log_odds:
            values = {b: [float(v) for v in lo[i]] for i, b in enumerate("ACGT")} | {"N": [0.0] * lo.shape[1]}
            fwd = lightmotif.ScoringMatrix(values)
            self.pssms.append((fwd, fwd.reverse_complement()))

    def _striped(self, seq: str):
        import lightmotif

        g, pad = self.enc.geometry, self.enc.max_width
        lo = g.crop_bins * g.bin_size
        return lightmotif.EncodedSequence(seq[lo - pad : lo + g.output_span + pad]).stripe()

    def _map(self, seqs: list[str], fn):
        """fn(striped sequence, motif index) for every sequence and motif, motifs split over the threads."""
        from concurrent.futures import ThreadPoolExecutor

        def work(part: int) -> list:
            out = []
            for s in seqs:
                striped = self._striped(s)
                out += [fn(striped, m) for m in range(part, len(self.pssms), self.threads)]
            return out

        with ThreadPoolExecutor(self.threads) as ex:
            return list(ex.map(work, range(self.threads)))

    def tracks(self, seqs: list[str]) -> None:
        self._map(seqs, lambda st, m: (self.pssms[m][0].calculate(st), self.pssms[m][1].calculate(st)))

    def features(self, seqs: list[str]):
        """float32 [B, output_bins, 2M]: the encoder's max and count features (gc=False) from lightmotif's tracks."""
        import numpy as np

        enc, g = self.enc, self.enc.geometry
        M, nb, bs, span = len(self.pssms), g.output_bins, g.bin_size, g.output_span

        def pooled(striped, m: int):
            start = enc.max_width - enc.motifs[m].width // 2  # track index of the first centre's window
            fwd, rev = (np.asarray(p.calculate(striped)).ravel()[start : start + span] for p in self.pssms[m])
            best = np.maximum(fwd, rev).reshape(nb, bs)
            return best.max(axis=1), (best >= enc.thresholds[m]).sum(axis=1)

        parts = self._map(seqs, pooled)
        out = np.zeros((len(seqs), nb, 2 * M), dtype=np.float32)
        for part, res in enumerate(parts):
            motifs_here = list(range(part, M, self.threads))
            for i, (mx, ct) in enumerate(res):
                b, m = divmod(i, len(motifs_here))
                out[b, :, motifs_here[m]], out[b, :, M + motifs_here[m]] = mx, ct
        return out


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def motif_table(m: dict) -> list[str]:
    """Markdown lines: one row per scanner, then the ratios and lightmotif's agreement."""
    b, runs = m["mbps_best"], m["mbps_all_rounds"]
    med = {k: statistics.median(v) for k, v in runs.items()}
    lines = [
        "| scanner | Mbp/s (best of rounds) | vs memelite | Mbp/s (median) | vs memelite (medians) |",
        "|---|---|---|---|---|",
        *(f"| {label.format(kernel=m.get('numba_kernel', '?'))} | {b[k]:.2f} | {b[k] / b['memelite_fimo']:.2f}x "
          f"| {med[k]:.2f} | {med[k] / med['memelite_fimo']:.2f}x |" for k, label in ROWS.items() if k in b),
        "",
    ]
    if "lightmotif_vs_encoder" in m:
        a = m["lightmotif_vs_encoder"]
        lines += [
            f"gta's {m['numba_kernel']} kernel is {m['ratio_numba_over_memelite']:.1f}x memelite and "
            f"{m['ratio_numba_over_lightmotif_features']:.1f}x lightmotif producing the same features. Same scores: "
            f"lightmotif's pooled features vs the encoder's differ by at most {a['max_abs_diff_of_max']:.1e} bit "
            f"in the max, {a['count_mismatches']} count mismatches over {a['hits_counted']} hits.",
            "",
        ]
    return lines


def _cores(m: dict) -> int:
    """The machine record's core count (``cores`` from gta.provenance.machine; ``cpus`` in records before it)."""
    return m.get("cores", m.get("cpus", 0))


def render(r: dict) -> str:
    m = r["motif"]
    load, cpus = r["machine"].get("load_average_1min", float("nan")), _cores(r["machine"])
    lines = [
        "# Encoder throughput",
        "",
        f"Machine: {r['machine']['cpu']}, {cpus or '?'} CPUs; "
        f"torch {r['machine']['torch']}, numba {r['machine']['numba']}, memelite {r['machine']['memelite']}, "
        f"lightmotif {r['machine'].get('lightmotif', '?')}; {r['machine']['date']}, "
        f"commit {r['machine'].get('commit', '?')}; 1-min load average {load:.1f} (shared machine"
        + (f": above the {cpus} CPUs, so threads also compete with other jobs" if 0 < cpus < load else "") + "). "
        f"Every scanner ran on {_threads(r['machine']['threads'])} unless a heading says otherwise.",
        "",
        f"## Motif scanning: {m['n_motifs']} JASPAR motifs (max width {m['max_width']}), both strands, "
        f"{m['mbp_scanned']:.2f} Mbp",
        "",
        *motif_table(m),
    ]
    for t, mt in r.get("motif_at_threads", {}).items():
        lines += [f"### The same on {_threads(int(t))}", "", *motif_table(mt)]
    if "enformer" in r:
        e = r["enformer"]
        secs = ", ".join(f"{t:.1f}" for t in e["seconds_per_sequence"])
        device = e.get("device", "cpu")  # results written before --device existed ran on the CPU
        where = "CPU" if device == "cpu" else f"GPU ({device})"
        name = e.get("device_name")
        gpu_mem = f", peak GPU memory {e['peak_gpu_memory_gb']:.1f} GB" if "peak_gpu_memory_gb" in e else ""
        lines += [
            f"## Enformer trunk, full-size architecture, random weights, {where}"
            + (f" (measured {e['measured']})" if "measured" in e else ""),
            "",
            (f"Device: {name}. " if name else "")
            + f"{e['params_m']:.0f} M parameters, {e['precision']}, {e['input_bp']:,} bp in -> {e['output_shape']} "
            f"out: {secs} s per sequence ({e['sequences_per_s']:.3f} sequences/s), peak RSS {e['peak_rss_gb']:.1f} GB"
            f"{gpu_mem}.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
