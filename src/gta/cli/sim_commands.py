"""CLI commands: ``gta simulate`` (the embedded benchmark data set)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from gta.cli.app import app
from gta.cli.options import config_option, out_option, set_threads, threads_option


@app.command("simulate")
def simulate(
    preset: str = typer.Option("demo", "--preset", help="Size preset: tiny (tests, seconds), demo (~350 genes, "
                               "100 individuals), bench (thousands of genes, hundreds of individuals)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed and config give byte-identical files."),
    out: Path = out_option(Path("sim"), "Output folder (created; or one gta simulate wrote before, whose files are "
                           "replaced); holds dataset.yaml and truth/."),
    config: Path | None = config_option("YAML file of parameter overrides on the preset (see truth/config.yaml of "
                                        "any run for every parameter)."),
    threads: int | None = threads_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Simulate a population genome with a planted long-range regulatory grammar, plus its ground truth."""
    from gta.sim import simulate as run

    set_threads(threads)
    t0 = time.perf_counter()
    manifest = run(preset=preset, seed=seed, out=out, config=config, progress=not quiet)
    summary = json.loads((manifest.parent / "truth" / "summary.json").read_text())
    ceiling = json.loads((manifest.parent / "truth" / "noise_ceiling.json").read_text())
    typer.echo(f"wrote {manifest}: {summary['n_genes']} genes x {summary['n_individuals']} individuals, "
               f"{summary['n_variants']} variants, {summary['genome_bp'] / 1e6:.1f} Mb genome, "
               f"{time.perf_counter() - t0:.1f} s")
    typer.echo(f"noise ceiling: across genes {ceiling['across_genes_mean_over_individuals']:.3f}, "
               f"across individuals (median per gene) {ceiling['across_individuals_median_per_gene']:.3f}; "
               f"mean distal share {summary['mean_distal_share']:.2f}")
