"""CLI commands: feature extraction (``gta extract``)."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app


@app.command("extract")
def extract_command(
    data: Path = typer.Option(..., "--data", help="Data set manifest (dataset.yaml)."),
    encoder: str = typer.Option("motif", "--encoder", help="Encoder name: motif (default, no weights) or enformer."),
    weights: Path | None = typer.Option(
        None, "--weights", help="Local folder with the encoder's weights (enformer: config.json + model file)."
    ),
    out: Path = typer.Option(Path("features.zarr"), "--out", help="Feature store folder to create or resume."),
    individuals: str = typer.Option(
        "none", "--individuals", help="Personal haplotypes: none, all, a comma-separated list or a file of samples."
    ),
    worker: int | None = typer.Option(None, "--worker", help="This worker's index k (default: $RANK or 0)."),
    workers: int | None = typer.Option(None, "--workers", help="Number of workers N (default: $WORLD_SIZE or 1)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Sequences per encoder call."),
    genes: str | None = typer.Option(None, "--genes", help="Comma-separated gene ids/symbols (default: all genes)."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage dtype: float16 (default) or float32."),
    cage_track: int | None = typer.Option(
        None, "--cage-track", help="enformer: also store this human head track (GM12878 CAGE = 5110)."
    ),
    rc_average: bool = typer.Option(False, "--rc-average", help="enformer: average with the reverse complement."),
    device: str | None = typer.Option(None, "--device", help="Torch device for the encoder (default: auto)."),
) -> None:
    """Encode gene windows (and personal haplotypes) into a resumable, shardable feature store."""
    from gta.features.extract import extract

    options: dict = {}
    if encoder == "enformer":
        options.update(cage_track=cage_track, rc_average=rc_average)
        if device:
            options["device"] = device
    elif cage_track is not None or rc_average:
        raise typer.BadParameter("--cage-track and --rc-average apply to --encoder enformer only")
    extract(
        data,
        encoder=encoder,
        weights=weights,
        out=out,
        individuals=individuals,
        worker=worker,
        n_workers=workers,
        batch_size=batch_size,
        genes=[g.strip() for g in genes.split(",") if g.strip()] if genes else None,
        dtype=dtype,
        encoder_options=options,
    )
