"""Draw one simulated gene's window to scale: promoter, enhancers, silencers, CTCF pairs, decoys and variants.

    python scripts/plot_simulated_gene.py [--data DIR/dataset.yaml] [--gene ENSG...] [--out docs/img/simulator_gene.png]

Without ``--data`` it simulates the tiny preset (seed 0) into a temp folder and picks the gene with the most
kinds of elements (an insulated enhancer and a causal variant preferred).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from gta.geometry import Geometry  # noqa: E402
from gta.io.manifest import load_manifest  # noqa: E402

COLOURS = {"promoter": "#1b9e77", "enhancer": "#d95f02", "repressor": "#7570b3", "ctcf": "#e7298a",
           "decoy": "#999999"}


def pick_gene(genes: pd.DataFrame, elements: pd.DataFrame, variants: pd.DataFrame) -> str:
    def rank(gid: str) -> tuple:
        el = elements[elements["gene_id"] == gid]
        v = variants[(variants["gene_id"] == gid) & (variants["effect"].abs() > 0.01)]
        return (bool(el["insulated"].any()), el["kind"].nunique(), len(v), (el["kind"] == "enhancer").sum())

    return max(genes["gene_id"], key=rank)


def plot(data: Path, gene_id: str | None, out: Path) -> Path:
    man = load_manifest(data)
    geo: Geometry = man.geometry
    read = lambda name: pd.read_csv(man.truth / name, sep="\t", keep_default_na=False)  # noqa: E731
    genes, elements, sites, variants = (read(n) for n in ("genes.tsv", "elements.tsv", "sites.tsv", "variants.tsv"))
    gene_id = gene_id or pick_gene(genes, elements, variants)
    g = genes.set_index("gene_id").loc[gene_id]
    el = elements[elements["gene_id"] == gene_id]
    st = sites[sites["gene_id"] == gene_id]
    va = variants[variants["gene_id"] == gene_id]
    half_in, half_out = geo.input_len / 2e3, geo.output_span / 2e3
    fig, (ax, axt, axv) = plt.subplots(3, 1, figsize=(12, 6.2), sharex=True, height_ratios=[3, 0.8, 1.3])
    for a in (ax, axt):
        a.axvspan(-half_out, half_out, color="#f2f2f2", zorder=0)
    ax.axhline(0, color="black", lw=0.8)
    for row in el.itertuples():
        x, width = row.distance / 1e3, max((row.end - row.start) / 1e3, 0.4)
        if row.kind != "decoy":
            ax.bar(x, row.effect, width=width, color=COLOURS[row.kind], zorder=3,
                   hatch="//" if row.insulated else None, edgecolor="black" if row.insulated else COLOURS[row.kind])
        level = {"promoter": 0, "enhancer": 1, "repressor": 1, "ctcf": 2, "decoy": 3}[row.kind]
        axt.add_patch(Rectangle((x - width / 2, level - 0.35), width, 0.7, color=COLOURS[row.kind],
                                hatch="//" if row.insulated else None, ec="black" if row.insulated else None))
    for row in st[st["motif"] == "CTCF"].itertuples():
        if row.element_id.split(":")[1].startswith("C"):
            x, dx = row.distance / 1e3, (1.6 if row.tx_strand == "+" else -1.6)
            axt.annotate("", xy=(x + dx, 2), xytext=(x, 2), arrowprops={"arrowstyle": "-|>", "color": "black"})
    axt.set_ylim(3.6, -0.6)
    axt.set_yticks(range(4), ["promoter", "enh./sil.", "CTCF pair", "decoy"], fontsize=7)
    ax.axvline(0, color="black", ls=":", lw=0.8)
    handles = [Patch(color=c, label=k) for k, c in COLOURS.items()]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="//", label="insulated by a convergent CTCF pair"),
                Patch(color="#f2f2f2", label="output span (896 x 128 bp)")]
    ax.legend(handles=handles, fontsize=7, ncol=4, loc="upper left", framealpha=0.9)
    ax.set_ylabel("contribution to\nlog expression")
    ax.set_title(f"{g['symbol']} ({gene_id}, {g['category']}, {g['strand']} strand): distal share "
                 f"{g['distal_share']:.2f}; window in the direction of transcription, TSS at 0", fontsize=10)
    neutral = va[va["effect"].abs() <= 0.01]
    causal = va[va["effect"].abs() > 0.01]
    axv.scatter(neutral["tss_distance"] / 1e3, neutral["af"], s=8, color="#bbbbbb", label="variant, no effect")
    axv.scatter(causal["tss_distance"] / 1e3, causal["af"], s=30, c=causal["effect"], cmap="coolwarm", vmin=-0.5,
                vmax=0.5, edgecolor="black", lw=0.5, label="causal variant (colour = effect)")
    axv.set_ylabel("allele freq.")
    axv.set_xlabel("distance from TSS (kb, transcription direction)")
    axv.set_xlim(-half_in, half_in)
    axv.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--gene")
    ap.add_argument("--out", type=Path, default=Path("docs/img/simulator_gene.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from gta.sim import simulate

            data = simulate("tiny", 0, Path(tmp) / "tiny", progress=False)
        print(plot(data, args.gene, args.out))


if __name__ == "__main__":
    main()
