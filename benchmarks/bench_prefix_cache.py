"""Training throughput of GTA with and without the prompt KV cache (embedded LLM on CPU; any LLM on a GPU).

One training step = forward + loss + backward + AdamW step of the full model (patching, prototype alignment, frozen
LLM after the prompt, head) on a batch of distinct genes. Steady state: every prompt was seen before (epoch >= 2).

    .venv/bin/python benchmarks/bench_prefix_cache.py [--layers 8 30] [--batch 8] [--steps 3]
    # on a GPU: a randomly initialised Llama-3.2-1B / Llama-3-8B-shaped model in bf16 (speed does not need weights)
    .venv/bin/python benchmarks/bench_prefix_cache.py --device cuda --precision bf16 --llm random-1b --layers 16 \
        --batch 32 --tag gpu

Writes benchmarks/results/prefix_cache{_TAG}.json and .md; on CUDA also peak GPU memory per example.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from gta.atomic import atomic_write_text
from gta.llm_loader import load_llm
from gta.model import GTA, GTAConfig
from gta.model.align import TextPrototypes, n_patches
from gta.provenance import cpu_model

SYMBOLS = ["SPI1", "PAX5", "EBF1", "IRF4", "CD19", "MS4A1", "RUNX3", "MEF2C", "POU2F2", "BCL6", "CTCF", "YY1",
           "NRF1", "ELK1", "TBP", "NFYA"]

# the architecture this benchmark has always measured (GTAConfig's defaults before they became default_config's)
ARCH = {"patch_len": 16, "patch_stride": 16, "n_prototypes": 1000, "prototype_vocab": None}


def prompt(i: int) -> str:
    sym = SYMBOLS[i % len(SYMBOLS)]
    return (f"<|start_prompt|>Task: predict the expression of gene {sym} "
            f"(protein coding, chromosome {i % 22 + 1}, {'+-'[i % 2]} strand) from the {56} sequence tokens that "
            f"follow. Function: B cell activation, regulation of transcription "
            f"by RNA polymerase II.{' Expressed in B cells.' * (i % 2)}<|end_prompt|>")


# Llama shapes for speed runs with random weights (the embedded tokenizer's vocabulary keeps prompts tokenisable)
RANDOM_LLAMAS = {
    "random-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                  "num_key_value_heads": 8},
    "random-8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
                  "num_key_value_heads": 8},
}


def build_llm(name: str, layers: int, device: str, dtype: torch.dtype):
    """The frozen LLM: "embedded", a path (load_llm), or a random Llama of RANDOM_LLAMAS built on ``device``."""
    if name not in RANDOM_LLAMAS:
        return load_llm(name, num_layers=layers, dtype=dtype).to(device)
    from transformers import LlamaConfig, LlamaModel

    from gta.llm_loader import embedded_tokenizer
    from gta.model.llm import FrozenLLM

    tok = embedded_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, tie_word_embeddings=True,
                         **{**RANDOM_LLAMAS[name], "num_hidden_layers": layers})
    torch.manual_seed(0)
    with torch.device(device):
        base = LlamaModel(config).to(dtype)
    return FrozenLLM(base, tok, source=name)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_step(model: GTA, feats: torch.Tensor, prompts: list[str], device: str = "cpu",
              autocast: torch.dtype | None = None):
    """A closure running one full training step; the first call fills the prompt cache (epoch >= 2 afterwards)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    target = torch.zeros(len(feats), 1, device=feats.device)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def step() -> float:
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(kind, dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            out = model(feats, prompts)
        loss = torch.nn.functional.mse_loss(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - start

    step()  # warm-up
    return step


def prototype_time(vocab: int, d_llm: int, k: int, steps: int, device: str = "cpu") -> float:
    """Seconds per step of the prototype map alone: W E (fwd + bwd) and the AdamW update of W [k, vocab]."""
    protos, E = TextPrototypes(vocab, k).to(device), torch.randn(vocab, d_llm, device=device)
    opt = torch.optim.AdamW(protos.parameters())
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        protos(E).sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[8, 30], help="LLM depths to time")
    ap.add_argument("--batch", type=int, default=8, help="genes per batch (distinct prompts)")
    ap.add_argument("--bins", type=int, default=896, help="feature bins (896 / 16 = 56 patch tokens)")
    ap.add_argument("--d-feat", type=int, default=64, help="feature width")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per setting (after one warm-up); median kept")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="output folder")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="bf16: frozen LLM stored in bf16 and the step under bf16 autocast")
    ap.add_argument("--llm", default="embedded", help=f"embedded, a .gguf/HF path, or {', '.join(RANDOM_LLAMAS)}")
    ap.add_argument("--tag", default="", help="suffix of the result files (prefix_cache_TAG.json), e.g. gpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32

    torch.manual_seed(0)
    prompts = [prompt(i) for i in range(args.batch)]
    feats = torch.randn(args.batch, args.bins, args.d_feat, device=args.device)
    rows, load_before = [], round(os.getloadavg()[0], 2)
    for layers in args.layers:
        llm = build_llm(args.llm, layers, args.device, dtype)
        n_tok = [len(llm.tokenize(p)) for p in prompts]
        steps, times, llm_times, peak = {}, {True: [], False: []}, {True: [], False: []}, {}
        tokens = (torch.randn(args.batch, n_patches(args.bins, 16, 16), llm.d_llm, device=args.device, dtype=dtype)
                  * 0.1).requires_grad_()
        for cached in (True, False):
            cfg = GTAConfig(llm_layers=layers, prefix_cache=cached, dropout=0.0, **ARCH)
            model = GTA(cfg, args.d_feat, args.bins, llm=llm).to(args.device).train()
            steps[cached] = make_step(model, feats, prompts, args.device, dtype if args.precision == "bf16" else None)
        weights_mb = torch.cuda.memory_allocated() / 2**20 if cuda else None
        for _ in range(args.steps):  # interleaved, so that load from other processes hits both alike
            for cached in (True, False):
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                times[cached].append(steps[cached]())
                if cuda:
                    peak[cached] = max(peak.get(cached, 0.0), torch.cuda.max_memory_allocated() / 2**20)
                _sync(args.device)
                start = time.perf_counter()  # the frozen LLM alone, fwd + bwd to its input tokens
                llm(tokens, prompts, use_cache_for_prefix=cached).float().square().mean().backward()
                _sync(args.device)
                llm_times[cached].append(time.perf_counter() - start)
        for cached in (True, False):
            med = statistics.median(times[cached])
            rows.append({"llm_layers": layers, "prefix_cache": cached, "sec_per_step": round(med, 3),
                         "sec_per_step_min": round(min(times[cached]), 3),
                         "examples_per_s": round(args.batch / med, 2),
                         "llm_only_sec": round(statistics.median(llm_times[cached]), 3),
                         "patch_tokens": n_patches(args.bins, 16, 16),
                         "prompt_tokens_mean": round(sum(n_tok) / len(n_tok), 1), "prompt_tokens_max": max(n_tok)})
            if cuda:  # resident weights and prompt caches, and what each example of the step adds on top
                rows[-1].update({"gpu_peak_mb": round(peak[cached], 1), "gpu_resident_mb": round(weights_mb, 1),
                                 "gpu_mb_per_example": round((peak[cached] - weights_mb) / args.batch, 1)})
            print(rows[-1], flush=True)
    k = ARCH["n_prototypes"]
    proto_sec = {v: round(prototype_time(v, llm.d_llm, k, args.steps, args.device), 3) for v in (llm.vocab_size, 8192)}
    result = {
        "benchmark": "prefix_cache", "device": args.device, "llm": args.llm, "precision": args.precision,
        "gpu": torch.cuda.get_device_name() if cuda else None, "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "batch": args.batch,
        "bins": args.bins, "d_feat": args.d_feat, "steps": args.steps, "rows": rows,
        "prototype_map_step_sec": {str(v): t for v, t in proto_sec.items()},
        "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
        "note": "full GTA training step (fwd + bwd + AdamW), float32, prompts cached after the warm-up step",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "prefix_cache" + (f"_{args.tag}" if args.tag else "")
    atomic_write_text(args.out / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    where = f"GPU ({result['gpu']})" if cuda else f"CPU ({result['cpu']}), {result['torch_threads']} threads"
    lines = [
        f"# Prompt KV cache: GTA training throughput on {'GPU' if cuda else 'CPU'}",
        "",
        f"Device: {where}, torch {torch.__version__}; LLM {args.llm}, {args.precision}; batch "
        f"{args.batch} distinct genes, {rows[0]['patch_tokens']} patch tokens, prompts of "
        f"{rows[0]['prompt_tokens_mean']} tokens on average (max {rows[0]['prompt_tokens_max']}); full training "
        f"step (fwd + bwd + AdamW); median of {args.steps} steps per setting after a warm-up, "
        "settings interleaved so that load from other processes hits both alike.",
        "",
        "| LLM layers | prompt cache | s / step (median) | s / step (min) | examples / s | speed-up | LLM alone s |"
        + (" GPU peak MB | GPU MB / example |" if cuda else ""),
        "|---:|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if cuda else ""),
    ]
    for r in rows:
        base = next(x for x in rows if x["llm_layers"] == r["llm_layers"] and not x["prefix_cache"])
        speedup = base["sec_per_step"] / r["sec_per_step"]
        gpu = f" {r['gpu_peak_mb']} | {r['gpu_mb_per_example']} |" if cuda else ""
        lines.append(f"| {r['llm_layers']} | {'yes' if r['prefix_cache'] else 'no'} | {r['sec_per_step']} | "
                     f"{r['sec_per_step_min']} | {r['examples_per_s']} | {speedup:.2f}x | {r['llm_only_sec']} |{gpu}")
    lines += ["", f"Load average of the (shared, 2-core) machine before / after: {result['load_before']} / "
              f"{result['load_after']}: absolute times are noisy, compare rows of one run.", "",
              f"Within each step, the prototype map alone (W E with W [{k}, V], fwd + bwd + AdamW) takes "
              f"{proto_sec[llm.vocab_size]} s over the whole vocabulary (V = {llm.vocab_size}) and "
              f"{proto_sec[8192]} s over the first 8,192 tokens (`prototype_vocab: 8192`).", ""]
    atomic_write_text(args.out / f"{stem}.md", "\n".join(lines))


if __name__ == "__main__":
    main()
