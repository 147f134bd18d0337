"""CLI commands on models: ``gta train``, ``gta predict`` and ``gta prompt`` (thin wrappers over gta.train)."""

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
    parse_samples,
    refuse_existing,
    run_option,
    samples_file_option,
    samples_option,
    set_threads,
    single_view_option,
    threads_option,
)


@app.command("train")
def train_command(
    data: Path = data_option(),
    features: Path = features_option(help="Feature store of the data set (gta extract)."),
    out: Path = out_option(..., "Run folder, e.g. runs/NAME (created)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training config YAML (TrainConfig); default: "
                                       "the embedded LLM cut to 2 layers, sized for a CPU."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last saved epoch."),
    task: str | None = typer.Option(None, "--task", help="cross-gene, cross-individual or both (overrides config)."),
    devices: int | None = typer.Option(None, "--devices", help="Devices (processes) per node."),
    accelerator: str | None = typer.Option(None, "--accelerator", help="cpu, gpu or auto."),
    strategy: str | None = typer.Option(None, "--strategy", help="auto, ddp or fsdp."),
    precision: str | None = typer.Option(None, "--precision",
                                         help="auto (bf16-mixed on a bf16 GPU, else 32), 32, bf16-mixed, 16-mixed."),
    max_epochs: int | None = typer.Option(
        None, "--max-epochs", help="Epoch budget (on --resume it may be raised only for a constant learning rate)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (overrides config)."),
    threads: int | None = threads_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train GTA (trainable parts only; the LLM stays frozen) and write the run folder."""
    from gta.train import train
    from gta.train.run import summarise_run

    set_threads(threads)
    result = train(data, features, out, config, resume=resume, task=task, devices=devices, accelerator=accelerator,
                   strategy=strategy, precision=precision, max_epochs=max_epochs, seed=seed, progress=not quiet)
    if result.summary:
        typer.echo(summarise_run(result))


@app.command("predict")
def predict_command(
    run: Path = run_option(),
    data: Path = data_option(),
    features: Path = features_option(help="Feature store (same encoder as the run's)."),
    out: Path = out_option(Path("predictions.tsv"), "Output table (.tsv, .csv or .parquet)."),
    samples: str | None = samples_option("Also predict these individuals of the store (personal genomes: two "
                                         "haplotypes combined): all, or a comma-separated list."),
    samples_file: Path | None = samples_file_option(),
    genes: str | None = genes_option("Only these genes: a comma-separated list of ids/symbols, or @FILE (one per "
                                     "line; # comments). Default: every gene of the store."),
    individuals: bool = typer.Option(False, "--individuals", hidden=True, help="Old spelling of -s all."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Genes per forward pass (default: the run's)."),
    device: str = device_option("cpu, cuda, cuda:N or auto (CUDA when present); a run trained bf16-mixed runs in "
                                "bf16 on a GPU."),
    threads: int | None = threads_option(),
    single_view: bool = single_view_option(),
    overwrite: bool = overwrite_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Predict expression for reference (and personal) genomes with a trained run. Under torchrun (N processes)
    the frozen LLM is sharded across them, for an LLM that fits no single device; rank 0 writes."""
    from gta.errors import GtaInputError
    from gta.train import predict
    from gta.train.predict import launched_ranks

    set_threads(threads)
    refuse_existing([out], overwrite)
    chosen = parse_samples(samples, samples_file)
    if individuals:
        if chosen is not None:
            raise GtaInputError("--individuals is the old spelling of -s all: give one of them")
        chosen = "all"
    df = predict(run, data, features, out, individuals=chosen == "all", batch_size=batch_size, progress=not quiet,
                 device=device, genes=parse_genes(genes), samples=chosen if isinstance(chosen, list) else None,
                 mirror_average=False if single_view else None)
    n_genes, n_ind = int((df["sample"] == "").sum()), int((df["sample"] != "").sum())
    if launched_ranks()[0] == 0:  # under torchrun the ranks share one sharded LLM and rank 0 writes
        typer.echo(f"wrote {out}: {n_genes} genes" + (f", {n_ind} individual rows" if n_ind else ""))


@app.command("prompt")
def prompt_command(
    data: Path = data_option(),
    gene: str = typer.Option(..., "--gene", "-g", help="Gene id (with or without version) or symbol."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="Training config (or a run's config.yaml) whose prompt_template to use; "
                                            "default: the default template."),
) -> None:
    """Print the prompt the model reads for a gene, exactly as training builds it."""
    from gta.io.dataset import open_dataset
    from gta.train import gene_prompt, load_config

    template = load_config(config).prompt_template if config is not None else None
    with open_dataset(data) as dataset:
        typer.echo(gene_prompt(dataset, gene, template=template))
