"""What sharding the frozen LLM (``strategy: fsdp``) buys: decoder weights held per rank, and the step time it costs.

W processes each load the LLM, shard its decoder layers across the group (``FrozenLLM.shard_``: FSDP2, one unit per
layer) and run the frozen-LLM part of a training step on their own batch: forward after each gene's cached prompt
and backward to the aligned tokens (the LLM's weights get no gradient). W = 1 is the unsharded reference.

    .venv/bin/python benchmarks/bench_llm_shard.py                       # embedded LLM, 1 and 2 CPU ranks (gloo)
    .venv/bin/python benchmarks/bench_llm_shard.py --device cuda --world 1 2 4 --llm random-8b --tag gpu  # nccl

Writes benchmarks/results/llm_shard{_TAG}.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_prefix_cache import RANDOM_LLAMAS, build_llm, prompt  # noqa: E402

from gta.atomic import atomic_write_text  # noqa: E402
from gta.provenance import cpu_model  # noqa: E402


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def worker(rank: int, world: int, args: argparse.Namespace, port: int, queue) -> None:
    import torch.distributed as dist

    cuda = args.device == "cuda"
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // world) if not cuda else 4)
    device = f"cuda:{rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(rank)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    llm = build_llm(args.llm, args.layers, "cpu", dtype)  # sharded from the CPU copy: a rank never holds it all
    llm.shard_("cuda" if cuda else "cpu")
    llm.to(device)
    import gc

    gc.collect()
    rss_sharded = rss_mb()
    local, full = llm.decoder_numel()
    prompts = [prompt(rank * args.batch + i) for i in range(args.batch)]
    g = torch.Generator().manual_seed(rank)
    tokens = (torch.randn(args.batch, args.tokens, llm.d_llm, generator=g) * 0.1).to(device, dtype).requires_grad_()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.steps + 1):  # the first step fills the prompt cache
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        llm(tokens, prompts).float().square().mean().backward()
        if cuda:
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    row = {"rank": rank, "world": world, "decoder_params_local": local, "decoder_params": full,
           "decoder_mb_local": round(local * torch.finfo(dtype).bits / 8 / 2**20, 1),
           "sec_per_step": round(statistics.median(times), 3), "rss_after_shard_mb": rss_sharded,
           "rss_after_steps_mb": rss_mb(), "peak_rss_mb": round(
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if cuda:
        row["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    queue.put(row)
    if world > 1:
        dist.barrier()  # leave together (a rank exiting mid-collective aborts its peer)
        dist.destroy_process_group()


def run_world(world: int, args: argparse.Namespace, port: int) -> list[dict]:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, world, args, port, queue)) for r in range(world)]
    for p in procs:
        p.start()
    rows = [queue.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"rank exited with {p.exitcode}")
    return sorted(rows, key=lambda r: r["rank"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=int, nargs="+", default=[1, 2], help="numbers of ranks to run")
    ap.add_argument("--llm", default="embedded", help=f"embedded, a .gguf/HF path, or {', '.join(RANDOM_LLAMAS)}")
    ap.add_argument("--layers", type=int, default=30, help="decoder layers kept")
    ap.add_argument("--batch", type=int, default=4, help="genes per rank and step (distinct prompts)")
    ap.add_argument("--tokens", type=int, default=56, help="aligned tokens per gene (896 bins / patches of 16)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up; median kept")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="frozen LLM weight dtype")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--tag", default="", help="suffix of the result files (llm_shard_TAG.json)")
    args = ap.parse_args()
    if args.device == "cuda" and torch.cuda.device_count() < max(args.world):
        raise SystemExit(f"--world {max(args.world)} needs that many CUDA devices")
    load_before = round(os.getloadavg()[0], 2)
    rows = [row for i, w in enumerate(args.world) for row in run_world(w, args, 29600 + i)]
    for r in rows:
        print(r, flush=True)
    result = {"benchmark": "llm_shard", "device": args.device, "llm": args.llm, "layers": args.layers,
              "precision": args.precision, "batch_per_rank": args.batch, "tokens": args.tokens, "steps": args.steps,
              "cpu_cores": os.cpu_count(), "cpu": cpu_model(),
              "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None, "torch": torch.__version__,
              "rows": rows, "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
              "note": "frozen-LLM part of a step (fwd after cached prompts + bwd to the tokens), per rank"}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "llm_shard" + (f"_{args.tag}" if args.tag else "")
    atomic_write_text(args.out / f"{stem}.json", json.dumps(result, indent=1) + "\n")
    lines = [
        "# Sharding the frozen LLM across ranks (`strategy: fsdp`)",
        "",
        f"LLM {args.llm}, first {args.layers} layers, {args.precision}; {args.device} "
        f"({result['gpu'] or result['cpu']}, {result['cpu_cores']} cores); {args.batch} genes per rank and step, "
        f"{args.tokens} aligned tokens after each gene's cached prompt; forward + backward to the tokens; median "
        f"of {args.steps} steps after a warm-up. Load average {load_before} before, {result['load_after']} after.",
        "",
        "| ranks | rank | decoder params held | of | decoder MB held | s / step | genes / s (all ranks) | RSS after "
        "sharding MB | RSS after steps MB | peak RSS MB |"
        + (" GPU peak MB |" if args.device == "cuda" else ""),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.device == "cuda" else ""),
    ]
    for r in rows:
        rate = r["world"] * args.batch / r["sec_per_step"]
        lines.append(f"| {r['world']} | {r['rank']} | {r['decoder_params_local']:,} | {r['decoder_params']:,} | "
                     f"{r['decoder_mb_local']} | {r['sec_per_step']} | {rate:.1f} | {r['rss_after_shard_mb']} | "
                     f"{r['rss_after_steps_mb']} | {r['peak_rss_mb']} |"
                     + (f" {r['gpu_peak_mb']} |" if "gpu_peak_mb" in r else ""))
    lines += ["", "Each rank keeps the embedding table and final norm whole (the text prototypes read E outside any "
              "layer), so the saving is the decoder layers' share (\"decoder MB held\"). Every rank loads the LLM "
              "on the host first and shards from that copy, so only the shard reaches a GPU. On CPU the process "
              "memory does not show the saving: sharding reads every page of the memory-mapped weight file, and "
              "the allocator keeps the freed per-layer gather buffers, so RSS is higher than unsharded; and the "
              "ranks split the cores, so the time per step says what the gathers cost here, not what a GPU "
              "cluster would see (there, `--device cuda` records the GPU peak per rank). CPU sharding is for "
              "testing that sharded training computes what one process does (tests/test_llm_shard.py, "
              "tests/test_ddp.py).", ""]
    atomic_write_text(args.out / f"{stem}.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
