"""How much of the target a frozen LLM's reading of the gene prompts carries (docs/learning.md, entry 6): RidgeCV
from standardised per-gene prompt summaries (mean / last-token last hidden state, mean input embedding) to the
cross-gene target, fitted on the train split, Spearman on val and test.

    python scripts/prompt_probe.py --data DIR_WITH_dataset.yaml_AND_features.zarr --layers 2 [6 ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_train import load  # noqa: E402

from gta.llm_loader import load_llm  # noqa: E402


def summaries(llm, texts: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, list[np.ndarray]] = {"mean": [], "last": [], "embedding": []}
    with torch.no_grad():
        for text in texts:
            res = llm.hf(input_ids=llm.tokenize(text)[None], use_cache=False, output_hidden_states=True)
            h = res.last_hidden_state[0]
            out["mean"].append(h.mean(0).numpy())
            out["last"].append(h[-1].numpy())
            out["embedding"].append(res.hidden_states[0][0].mean(0).numpy())
    return {k: np.stack(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--layers", type=int, nargs="+", default=[2])
    args = ap.parse_args()
    _, data, _, prompts, _ = load(args.data)
    y = data.standardise(data.y_gene)
    tr, va, te = (np.array(data.genes_in(s)) for s in ("train", "val", "test"))
    for layers in args.layers:
        feats = summaries(load_llm("embedded", num_layers=layers), [prompts[g] for g in data.gene_ids])
        for kind, f in feats.items():
            f = (f - f[tr].mean(0)) / (f[tr].std(0) + 1e-6)
            ridge = RidgeCV(alphas=np.logspace(-1, 4, 12)).fit(f[tr], y[tr])
            rv, rt = (spearmanr(ridge.predict(f[s]), y[s])[0] for s in (va, te))
            print(f"layers {layers} {kind:9s} alpha {ridge.alpha_:8.1f} val {rv:.3f} test {rt:.3f}", flush=True)


if __name__ == "__main__":
    main()
