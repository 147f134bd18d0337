"""Label-free reads of the prompt beside the distance bands (docs/learning.md, entry 39): can GTA's annotation prior
read more of the annotation than the ridge read of the frozen LLM's mean last hidden state (0.638 with the bands in
benchmarks/results/annotation_probe.md), without the simulator's category labels? RidgeCV on the train split,
cross-gene Spearman on the test split, from the distance-band features plus one read of the prompt: token states
pooled by mean or max at each layer (0 = the input embeddings), the last token, a stacked ridge read, k-means
clusters of the summaries, a TF-IDF ridge read of the prompt text (no LLM); and the annotation prior fitted alone
then the bands on its residual (as GTA trains) against one joint fit.

    python scripts/prompt_read_probe.py --data DIR_WITH_dataset.yaml_features.zarr_AND_truth [--layers 2]
Writes benchmarks/results/prompt_read_probe.{json,md}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import RidgeCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_train import load  # noqa: E402

from gta.evaluate.baselines import RidgeOnMotifHits  # noqa: E402
from gta.llm_loader import load_llm  # noqa: E402
from gta.provenance import source_commit  # noqa: E402
from gta.train.run import open_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = np.logspace(-2, 6, 40)


def token_pools(data_dir: Path, layers: int, texts: list[str]) -> dict[str, np.ndarray]:
    """Per prompt: mean and max of the token states at each layer (0 = input embeddings), and the last token's
    state at the last layer; cached beside the data, keyed by the prompts."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    cache = data_dir / f"prompt_pools_L{layers}_{digest}.npz"
    if not cache.exists():
        llm = load_llm("embedded", num_layers=layers)
        pools: dict[str, list[np.ndarray]] = {}
        with torch.no_grad():
            for text in texts:
                out = llm.hf(input_ids=llm.tokenize(text)[None], output_hidden_states=True)
                for layer, h in enumerate(out.hidden_states):
                    pools.setdefault(f"mean, layer {layer}", []).append(h[0].float().mean(0).numpy())
                    pools.setdefault(f"max, layer {layer}", []).append(h[0].float().max(0).values.numpy())
                pools.setdefault(f"last token, layer {layers}", []).append(out.hidden_states[-1][0, -1].float().numpy())
        np.savez(cache, **{k: np.stack(v) for k, v in pools.items()})
    with np.load(cache) as z:
        return {k: z[k] for k in z.files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(2)
    _, data, X, prompts, _ = load(args.data)
    _, store = open_inputs(args.data / "dataset.yaml", args.data / "features.zarr")
    split, y = np.array(data.split), data.y_gene
    tr, te = split == "train", split == "test"
    z = lambda a: (a - a[tr].mean(0)) / (a[tr].std(0) + 1e-6)  # noqa: E731
    bands = z(RidgeOnMotifHits.for_store(store).transform(X))
    texts = [prompts[g] for g in data.gene_ids]
    pools = token_pools(args.data, args.layers, texts)
    rows: list[dict] = []

    def score(pred: np.ndarray, name: str, alpha: float | None = None) -> None:
        rows.append({"features": name, "spearman": float(spearmanr(pred[te], y[te])[0]), "alpha": alpha})
        print(rows[-1], flush=True)

    def fit(features: np.ndarray, name: str) -> np.ndarray:
        ridge = RidgeCV(alphas=ALPHAS).fit(features[tr], y[tr])
        score(ridge.predict(features), name, float(ridge.alpha_))
        return ridge.predict(features)

    def stacked(s: np.ndarray, k: int = 5) -> np.ndarray:
        """One number a gene: a ridge read of ``s``, out of fold on the train genes (so the second fit is fair)."""
        out, idx = np.zeros(len(y)), np.flatnonzero(tr)
        np.random.default_rng(0).shuffle(idx)
        for fold in np.array_split(idx, k):
            rest = np.setdiff1d(idx, fold)
            out[fold] = RidgeCV(alphas=ALPHAS).fit(s[rest], y[rest]).predict(s[fold])
        out[~tr] = RidgeCV(alphas=ALPHAS).fit(s[tr], y[tr]).predict(s[~tr])
        return out[:, None]

    fit(bands, "distance bands")
    for name, s in pools.items():
        fit(np.hstack([bands, z(s)]), f"distance bands + {name}")
    mean = z(pools[f"mean, layer {args.layers}"])
    fit(np.hstack([bands, mean, z(pools[f"max, layer {args.layers}"])]), "distance bands + mean and max, last layer")
    fit(np.hstack([bands, stacked(mean)]), "distance bands + stacked ridge read of the mean (last layer)")
    pcs = PCA(50, random_state=0).fit(mean[tr]).transform(mean)
    for k in (8, 16, 32):
        km = KMeans(k, n_init=10, random_state=0).fit(pcs[tr])
        fit(np.hstack([bands, np.eye(k)[km.predict(pcs)]]), f"distance bands + {k} k-means clusters of the mean")
    train_texts = [t for t, s in zip(texts, split, strict=True) if s == "train"]
    tfidf = TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True).fit(train_texts)
    fit(np.hstack([bands, stacked(tfidf.transform(texts).toarray())]),
        "distance bands + stacked ridge read of TF-IDF of the prompt (no LLM)")
    prior = RidgeCV(alphas=ALPHAS).fit(mean[tr], y[tr]).predict(mean)  # GTA's order: the prior alone, then the rest
    rest = RidgeCV(alphas=ALPHAS).fit(bands[tr], (y - prior)[tr])
    score(prior + rest.predict(bands), "annotation prior (mean, last layer) alone, then the bands on its residual",
          float(rest.alpha_))
    meta = {"commit": source_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "data": str(args.data), "layers": args.layers, "n_train": int(tr.sum()), "n_test": int(te.sum())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prompt_read_probe.json").write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    lines = [f"# Label-free reads of the prompt beside the distance bands ({meta['n_test']} test genes)", "",
             f"Written by `scripts/prompt_read_probe.py` at commit {meta['commit']}, {meta['date']}. RidgeCV on the "
             f"train split ({meta['n_train']} genes), cross-gene Spearman on the test split; the frozen embedded LLM "
             f"cut to {args.layers} layers.", "", "| features | Spearman | alpha |", "|---|---|---|"]
    lines += [f"| {r['features']} | {r['spearman']:.3f} | {'' if r['alpha'] is None else format(r['alpha'], '.3g')} |"
              for r in rows]
    (args.out / "prompt_read_probe.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
