"""CLI commands: ``gta annotations build`` (the human gene table that prompts are built from)."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import annotations_app
from gta.cli.options import out_option, overwrite_option, refuse_existing
from gta.io.annotations import build_annotations, load_human_genes


@annotations_app.command("build")
def build(
    sqlite_dir: Path | None = typer.Option(
        None, "--sqlite-dir", help="Folder holding org.Hs.eg.sqlite and GO.sqlite (searched recursively, e.g. a "
        "dpkg -x root). Default: download the Debian packages with apt-get."),
    debs_dir: Path | None = typer.Option(
        None, "--debs-dir", help="Folder with the r-bioc-org.hs.eg.db and r-bioc-go.db .deb files to unpack."),
    out: Path = out_option(Path("human_genes.tsv.gz"), "Output table (.tsv.gz); a .meta.json recording the source "
                           "versions is written beside it."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Build the human gene annotation table (symbol, name, type, location, GO processes, description)."""
    refuse_existing([out], overwrite)
    path = build_annotations(sqlite_dir=sqlite_dir, out=out, debs_dir=debs_dir)
    table = load_human_genes.__wrapped__(path)
    n_pc = int((table["gene_type"] == "protein_coding").sum())
    typer.echo(f"wrote {path}: {len(table)} genes ({n_pc} protein-coding, "
               f"{int((table['go_bp'] != '').sum())} with GO processes)")
