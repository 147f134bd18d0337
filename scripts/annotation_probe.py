"""What the gene annotation adds to the distance-band ridge, and how much of it a frozen LLM's reading of the prompt
keeps (docs/learning.md, entry 13). Cross-gene Spearman on the test split of RidgeCV fits (train split) from:
the distance-band features alone; plus the simulator's true category (a ceiling: no model sees it); plus TF-IDF
category probabilities of the GO terms or the prompt (a logistic fit on the true category: also a ceiling, it uses a
label gta never has); plus the frozen LLM's mean hidden state over the prompt (what GTA's annotation prior reads).

    python scripts/annotation_probe.py --data DIR_WITH_dataset.yaml_features.zarr_AND_truth [--layers 2 30]
        [--go-budgets 3/140 8/400 20/1000]
Writes benchmarks/results/annotation_probe.{json,md}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV, RidgeCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_train import load  # noqa: E402

from gta.evaluate.baselines import RidgeOnMotifHits  # noqa: E402
from gta.llm_loader import load_llm  # noqa: E402
from gta.provenance import source_commit  # noqa: E402
from gta.train.run import open_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def summarise(llm, prompts: list[str]) -> np.ndarray:
    """[g, m] the LLM's mean hidden state over each prompt."""
    with torch.no_grad():
        return llm.prompt_summaries(prompts).numpy()


def summaries(data_dir: Path, layers: int, prompts: list[str]) -> np.ndarray:
    """[g, m] frozen LLM mean hidden state over each prompt (cached beside the data, keyed by the prompts)."""
    digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:12]  # the prompts it was made from
    cache = data_dir / f"prompt_L{layers}_{digest}.npz"
    if not cache.exists():
        np.savez(cache, mean=summarise(load_llm("embedded", num_layers=layers), prompts))
    return np.load(cache)["mean"]


def go_term_budget(args, data, bands: np.ndarray, fit) -> None:
    """The ridge probe again with prompts of other GO-term budgets (``terms/characters``): how much of the annotation
    the prompt keeps. Prompts are rebuilt with the prompt module's limits patched; the summaries are not cached."""
    import gta.model.prompt as prompt_module
    from gta.train.prompts import run_prompts

    dataset, _ = open_inputs(args.data / "dataset.yaml", args.data / "features.zarr")
    llm = load_llm("embedded", num_layers=args.layers[0])
    saved = prompt_module.GO_TERMS_MAX, prompt_module.ANNOTATION_MAX_CHARS
    try:
        for budget in args.go_budgets:
            terms, chars = (int(v) for v in budget.split("/"))
            prompt_module.GO_TERMS_MAX, prompt_module.ANNOTATION_MAX_CHARS = terms, chars
            built = run_prompts(dataset, data.gene_ids, folder=None, progress=False)
            texts = [built[g] for g in data.gene_ids]
            s = summarise(llm, texts)
            tokens = float(np.mean([len(llm.tokenize(t)) for t in texts]))
            fit(s, f"{args.layers[0]}-layer summary, prompts of {terms} GO terms / {chars} characters")
            fit(np.hstack([bands, s]), f"distance bands + that summary ({terms}/{chars}, {tokens:.0f} tokens)")
    finally:
        prompt_module.GO_TERMS_MAX, prompt_module.ANNOTATION_MAX_CHARS = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--layers", type=int, nargs="+", default=[2])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--go-budgets", nargs="*", default=["3/140", "8/400", "20/1000"],
                    help="GO terms/characters of the prompt's annotation to probe (none: skip)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    _, data, X, prompts, _ = load(args.data)
    _, store = open_inputs(args.data / "dataset.yaml", args.data / "features.zarr")
    bands = RidgeOnMotifHits.for_store(store).transform(X)
    truth = pd.read_csv(args.data / "truth" / "genes.tsv", sep="\t").set_index("gene_id")
    ann = pd.read_csv(args.data / "annotations.tsv", sep="\t").set_index("gene_id")
    ids = [g.split(".")[0] for g in data.gene_ids]
    category = truth.loc[ids, "category"].to_numpy()
    split, y = np.array(data.split), data.y_gene
    tr, te = split == "train", split == "test"
    rows: list[dict] = []

    def fit(features: np.ndarray, name: str) -> None:
        f = (features - features[tr].mean(0)) / (features[tr].std(0) + 1e-9)
        ridge = RidgeCV(alphas=np.logspace(-2, 5, 30)).fit(f[tr], y[tr])
        rows.append({"model": name, "spearman": float(spearmanr(ridge.predict(f[te]), y[te])[0]),
                     "alpha": float(ridge.alpha_)})
        print(rows[-1], flush=True)

    def category_probs(features) -> tuple[np.ndarray, float]:
        clf = LogisticRegressionCV(max_iter=3000, Cs=8).fit(features[tr], category[tr])
        return clf.predict_proba(features), float((clf.predict(features[te]) == category[te]).mean())

    fit(bands, "distance bands")
    onehot = pd.get_dummies(category).to_numpy(float)
    fit(onehot, "true category (ceiling)")
    fit(np.hstack([bands, onehot]), "distance bands + true category (ceiling)")
    accuracy = {}
    texts = {"GO terms (all)": [str(ann.loc[g, "go_bp"]) if g in ann.index else "" for g in ids],
             "prompt": [prompts[g] for g in data.gene_ids]}
    for label, text in texts.items():
        tfidf = TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True)
        tfidf.fit([t for t, s in zip(text, split, strict=True) if s == "train"])
        probs, accuracy[f"tfidf {label}"] = category_probs(tfidf.transform(text))
        fit(np.hstack([bands, probs]), f"distance bands + category from TF-IDF of {label} (ceiling)")
    for layers in args.layers:
        s = summaries(args.data, layers, texts["prompt"])
        s = (s - s[tr].mean(0)) / (s[tr].std(0) + 1e-6)
        probs, accuracy[f"LLM {layers} layers"] = category_probs(s)
        fit(np.hstack([bands, probs]), f"distance bands + category from {layers}-layer LLM summary (ceiling)")
        fit(s, f"{layers}-layer LLM prompt summary alone")
        fit(np.hstack([bands, s]), f"distance bands + {layers}-layer LLM prompt summary")
    if args.go_budgets:
        go_term_budget(args, data, bands, fit)
    meta = {"commit": source_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "data": str(args.data), "n_train": int(tr.sum()), "n_test": int(te.sum())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "annotation_probe.json").write_text(json.dumps({**meta, "rows": rows, "category_accuracy": accuracy},
                                                               indent=1) + "\n")
    lines = [f"# What the annotation adds to the distance-band ridge ({meta['n_test']} test genes)", "",
             f"Written by `scripts/annotation_probe.py` at commit {meta['commit']}, {meta['date']}. RidgeCV on the "
             f"train split ({meta['n_train']} genes), cross-gene Spearman on the test split. Rows marked (ceiling) use "
             "the simulator's true category, which no gta model sees.", "", "| features | Spearman | alpha |",
             "|---|---|---|"]
    lines += [f"| {r['model']} | {r['spearman']:.3f} | {r['alpha']:.3g} |" for r in rows]
    lines += ["", "Test accuracy of the true category from a logistic fit: " +
              ", ".join(f"{k} {v:.2f}" for k, v in accuracy.items()), ""]
    (args.out / "annotation_probe.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
