"""Encoder throughput: motif encoder vs memelite FIMO (Mbp/s, same motifs and sequence), Enformer sequences/s.

Run: ``.venv/bin/python benchmarks/bench_encoders.py [--threads 2] [--seqs 8] [--enformer-seqs 1]
[--device cpu|cuda] [--precision bf16|fp16|fp32] [--out DIR]``. Writes ``encoders.json`` and ``encoders.md`` into
``benchmarks/results`` (or ``--out``); the Enformer section records the device it ran on (the GPU's name for
``cuda``) and its precision. Timings are best-of-``--rounds`` with the
contenders interleaved, after one warm-up call each (numba compilation is not timed). Both scanners read the same
one-hot windows; FIMO reports p < 1e-4 hits per motif and strand, the motif encoder pools max score and hit count
into 128-bp bins, so the work is comparable but not identical.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
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
    os.environ["NUMBA_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import memelite
    import numba
    import numpy as np
    import torch

    from gta.encoders import EnformerEncoder, MotifEncoder
    from gta.geometry import Geometry
    from gta.io.genome import one_hot

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    g = Geometry()
    rng = np.random.default_rng(0)
    p = [0.295, 0.205, 0.205, 0.295]
    seqs = ["".join(rng.choice(list("ACGT"), p=p, size=g.input_len)) for _ in range(args.seqs)]
    span = g.output_span
    enc = MotifEncoder(g, gc=False, backend="numba", threads=args.threads)
    enc_t = MotifEncoder(g, gc=False, backend="torch", threads=args.threads)
    lo = g.crop_bins * g.bin_size
    X = np.stack([one_hot(s[lo : lo + span]).T for s in seqs]).astype(np.float32)  # [N, 4, L], the scanned region
    motifs = {m.name: m.probs.astype(np.float32) for m in enc.motifs}
    mbp = len(seqs) * span / 1e6

    enc.encode(seqs[:1])
    enc_t.encode(seqs[:1])
    memelite.fimo(motifs, X[:1], threshold=1e-4)
    runs: dict[str, list[float]] = {"motif_numba": [], "motif_torch": [], "memelite_fimo": []}
    for _ in range(args.rounds):
        t = time.perf_counter()
        enc.encode(seqs)
        runs["motif_numba"].append(mbp / (time.perf_counter() - t))
        t = time.perf_counter()
        enc_t.encode(seqs[:2])
        runs["motif_torch"].append(2 * span / 1e6 / (time.perf_counter() - t))
        t = time.perf_counter()
        memelite.fimo(motifs, X, threshold=1e-4)
        runs["memelite_fimo"].append(mbp / (time.perf_counter() - t))
    best = {k: max(v) for k, v in runs.items()}
    result: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "numba": numba.__version__,
            "memelite": getattr(memelite, "__version__", "?"),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_1min": os.getloadavg()[0],  # the machine is shared: a high load depresses every number
        },
        "motif": {
            "n_motifs": len(enc.motifs),
            "motifs": [m.name for m in enc.motifs],
            "max_width": enc.max_width,
            "mbp_scanned": mbp,
            "mbps_best": best,
            "mbps_all_rounds": runs,
            "ratio_numba_over_memelite": best["motif_numba"] / best["memelite_fimo"],
            "ratio_torch_over_memelite": best["motif_torch"] / best["memelite_fimo"],
        },
    }
    if args.enformer_seqs > 0:
        from enformer_pytorch import Enformer

        from gta.encoders.enformer import choose_device

        if args.device == "cuda" and not torch.cuda.is_available():
            ap.error("--device cuda: torch sees no CUDA device")
        device = choose_device("auto", True, os.environ, torch.cuda.device_count()) if args.device == "cuda" else "cpu"
        device_name = torch.cuda.get_device_name(device) if device != "cpu" else (platform.processor()
                                                                                   or platform.machine())

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
        }
        if device != "cpu":
            result["enformer"]["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1024**3
    elif (out_dir / "encoders.json").exists():  # keep the last Enformer measurement when it was skipped
        previous = json.loads((out_dir / "encoders.json").read_text())
        if "enformer" in previous:
            result["enformer"] = previous["enformer"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "encoders.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "encoders.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    m = r["motif"]
    b = m["mbps_best"]
    lines = [
        "# Encoder throughput",
        "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['threads']} threads; torch {r['machine']['torch']}, "
        f"numba {r['machine']['numba']}, memelite {r['machine']['memelite']}; {r['machine']['date']}; "
        f"1-min load average {r['machine'].get('load_average_1min', float('nan')):.1f} (shared machine).",
        "",
        f"## Motif scanning: {m['n_motifs']} JASPAR motifs (max width {m['max_width']}), both strands, "
        f"{m['mbp_scanned']:.2f} Mbp",
        "",
        "| scanner | Mbp/s (best of rounds) | vs memelite |",
        "|---|---|---|",
        f"| gta motif encoder, numba backend (max + count per 128-bp bin) | {b['motif_numba']:.1f} | "
        f"{m['ratio_numba_over_memelite']:.2f}x |",
        f"| gta motif encoder, torch GEMM backend | {b['motif_torch']:.2f} | {m['ratio_torch_over_memelite']:.2f}x |",
        f"| memelite FIMO (p < 1e-4 hits) | {b['memelite_fimo']:.1f} | 1.00x |",
        "",
    ]
    if "enformer" in r:
        e = r["enformer"]
        secs = ", ".join(f"{t:.1f}" for t in e["seconds_per_sequence"])
        device = e.get("device", "cpu")  # results written before --device existed ran on the CPU
        where = "CPU" if device == "cpu" else f"GPU ({device})"
        name = e.get("device_name")
        gpu_mem = f", peak GPU memory {e['peak_gpu_memory_gb']:.1f} GB" if "peak_gpu_memory_gb" in e else ""
        lines += [
            f"## Enformer trunk, full-size architecture, random weights, {where}",
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
