"""Entry point of the sharded-LLM test: ``python tests/shard_script.py OUT --world 2`` spawns W gloo ranks.

Each rank builds the same tiny random Llama, shards its decoder layers (``FrozenLLM.shard_``) and runs, with prompts
that differ between ranks (so one rank's prompt-cache hit is another's miss): cached and uncached forwards, a
backward to the input embeddings (plain and with gradient checkpointing) and an inference-mode pass. It writes
``OUT/rank{r}.safetensors`` with the outputs, the input gradients and the numel of its decoder shard, which the
test compares with one unsharded process.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROMPTS = ["gene A: a transcription factor", "gene B", "gene C: kinase, signalling", "gene D: ribosomal protein"]


def batches(rank: int) -> list[list[str]]:
    """Per rank, three batches of prompts: ranks see different prompts, and a prompt seen again hits the cache."""
    a, b, c, d = PROMPTS
    return [[a, b], [c, a], [d, b]] if rank == 0 else [[c, c], [a, d], [b, b]]


def run(rank: int, world: int, out: Path, port: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from gta.llm_loader import tiny_random_llm

    if world > 1:
        import torch.distributed as dist

        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    llm = tiny_random_llm(num_layers=2, hidden=32)
    llm.shard_("cpu")
    local, full = llm.decoder_numel()
    tensors = {"decoder_numel": torch.tensor([local, full])}
    for r in range(max(world, 2)):  # the single process computes every rank's reference
        if world > 1 and r != rank:
            continue
        g = torch.Generator().manual_seed(100 + r)
        for i, prompts in enumerate(batches(r)):
            x = torch.randn(len(prompts), 5, llm.d_llm, generator=g, requires_grad=True)
            cached = llm(x, prompts, use_cache_for_prefix=True)
            cached.square().sum().backward()
            tensors[f"r{r}_b{i}_cached"] = cached.detach()
            tensors[f"r{r}_b{i}_grad"] = x.grad.detach().clone()
            tensors[f"r{r}_b{i}_uncached"] = llm(x, prompts, use_cache_for_prefix=False).detach()
        llm.set_gradient_checkpointing(True)
        x = torch.randn(2, 5, llm.d_llm, generator=g, requires_grad=True)
        llm(x, batches(r)[0]).square().sum().backward()
        tensors[f"r{r}_ckpt_grad"] = x.grad.detach().clone()
        llm.set_gradient_checkpointing(False)
        with torch.inference_mode():
            tensors[f"r{r}_inference"] = llm(x.detach(), batches(r)[1]).clone()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / f"rank{rank}.safetensors"))
    if world > 1:  # leave together: a rank that exits with gloo's threads alive aborts ("terminate called ...")
        dist.barrier()
        dist.destroy_process_group()
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--port", type=int, default=29541)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.world == 1:
        run(0, 1, args.out, args.port)
        return
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(args.world, args.out, args.port), nprocs=args.world)


def _spawned(rank: int, world: int, out: Path, port: int) -> None:
    run(rank, world, out, port)


if __name__ == "__main__":
    sys.exit(main())
