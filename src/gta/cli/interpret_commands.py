"""CLI commands on trained runs' explanations: ``gta interpret`` and ``gta score-variants`` (thin wrappers over
:mod:`gta.interpret`)."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app
from gta.cli.options import (
    data_option,
    device_option,
    features_option,
    genes_option,
    out_option,
    overwrite_option,
    parse_genes,
    refuse_existing,
    refuse_filled_folder,
    run_option,
    set_threads,
    single_view_option,
    threads_option,
)


@app.command("interpret")
def interpret_command(
    run: Path = run_option(),
    data: Path = data_option(),
    features: Path = features_option(help="Feature store the run was trained on."),
    genes: str | None = genes_option(),
    n_genes: int | None = typer.Option(None, "--n-genes", "-n", help="Number of genes (held-out genes first; "
                                       "default 10 when --genes is not given)."),
    method: str = typer.Option("all", "--method", "-m", help="attention, gradxinput, occlusion or all "
                               "(comma-separated for several)."),
    attention_mode: str = typer.Option("rollout", "--attention-mode", help="rollout (all LLM layers), last (last "
                                       "layer) or pool (the head's pooling weights only)."),
    evaluate: bool = typer.Option(False, "--evaluate", help="Simulated data: AUPRC of each method for the true "
                                  "elements' bins, written to interpret_metrics.json."),
    top_k: int = typer.Option(10, "--top-k", help="Sections (model patches) per gene and method in "
                              "top_sections.tsv."),
    batch_size: int = typer.Option(16, "--batch-size", help="Occluded copies per forward pass."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG figures."),
    single_view: bool = single_view_option(),
    overwrite: bool = overwrite_option(),
    device: str = device_option(),
    out: Path = out_option(Path("interpret"), "Output folder (created; one that holds files needs --overwrite)."),
    threads: int | None = threads_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Which sections of each gene's window drive the prediction: figures, bedGraph/bigWig tracks, top sections."""
    from gta.interpret import interpret

    refuse_filled_folder(out, overwrite)
    set_threads(threads)
    result = interpret(run, data, features, genes=parse_genes(genes), n_genes=n_genes, method=method,
                       evaluate=evaluate, out=out, top_k=top_k, attention_mode=attention_mode, batch_size=batch_size,
                       plots=not no_plots, device=device, progress=not quiet,
                       mirror_average=False if single_view else None)
    typer.echo(result.summary())


@app.command("score-variants")
def score_variants_command(
    run: Path = run_option(),
    data: Path = data_option("Data set manifest (dataset.yaml): genome and genes."),
    vcf: Path = typer.Option(..., "--vcf", help="Variants to score (VCF/BCF; bgzipped + indexed or plain)."),
    out: Path = out_option(Path("effects.tsv"), "Effects table (TSV); skipped alleles go to <stem>.skipped.tsv "
                           "beside it."),
    features: Path | None = features_option(None, "The run's feature store: reuse its reference features (else "
                                            "reference windows are encoded)."),
    weights: Path | None = typer.Option(None, "--weights", help="Encoder weights folder (Enformer features)."),
    genes: str | None = genes_option("Only these genes: a comma-separated list of ids/symbols, or @FILE (one per "
                                     "line; # comments)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first REF that does not match the genome."),
    evaluate: bool | None = typer.Option(None, "--evaluate/--no-evaluate", help="Compare with the simulator's "
                                         "truth/variants.tsv (default: when the data set has one)."),
    batch_size: int = typer.Option(16, "--batch-size", help="ALT windows per forward pass."),
    single_view: bool = single_view_option(),
    overwrite: bool = overwrite_option(),
    device: str = device_option(),
    threads: int | None = threads_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Predicted effect (ALT minus REF) of every variant on each gene whose input window holds it."""
    from gta.interpret import score_variants
    from gta.interpret.variants import metrics_path_for, skipped_path_for

    set_threads(threads)
    refuse_existing([out, skipped_path_for(out), metrics_path_for(out)], overwrite)
    summary = score_variants(run, data, vcf, out, features=features, weights=weights, genes=parse_genes(genes),
                             strict=strict, batch_size=batch_size, evaluate=evaluate, device=device, progress=not quiet,
                             mirror_average=False if single_view else None)
    typer.echo(str(summary))
