"""A training on the toy data set that SIGKILLs itself at a chosen point: the entry point of the kill-and-resume
tests in ``test_checkpoint.py``.

``python tests/kill_script.py MANIFEST STORE OUT --kill-at-step N`` trains ``toy_config(task="both",
dropout=DROPOUT)`` and sends itself SIGKILL when the training step with ``global_step == N`` starts (mid-epoch:
the optimiser has stepped N times). ``--kill-in-save K`` instead kills it inside the K-th checkpoint write
(1-based), after ``state.safetensors`` is in place and before ``state.json`` is: the worst moment for a pair of
files. SIGKILL runs no handler, no ``finally`` and no atexit: what is on disk then is what a crash leaves.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ddp_script import toy_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--kill-at-step", type=int, default=None)
    parser.add_argument("--kill-in-save", type=int, default=None)
    args = parser.parse_args()
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from gta.train import checkpoint, train
    from gta.train.module import GTAModule

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if args.kill_at_step is not None:
        step = GTAModule.training_step

        def training_step(self, batch, batch_idx):
            if self.trainer.global_step == args.kill_at_step:
                print(f"killing at global_step {self.trainer.global_step}, epoch {self.trainer.current_epoch}")
                die()
            return step(self, batch, batch_idx)

        GTAModule.training_step = training_step
    if args.kill_in_save is not None:
        write = checkpoint.atomic_write_text
        saves = [0]

        def atomic_write_text(path, text):
            if Path(path).name == checkpoint.STATE_JSON:
                saves[0] += 1
                if saves[0] == args.kill_in_save:
                    print(f"killing inside checkpoint write {saves[0]}, before {path} is written")
                    die()
            return write(path, text)

        checkpoint.atomic_write_text = atomic_write_text
    cfg = toy_config(task="both", max_epochs=args.max_epochs)
    cfg.model = dataclasses.replace(cfg.model, dropout=args.dropout)
    train(args.manifest, args.store, args.out, cfg, progress=False)


if __name__ == "__main__":
    main()
