"""CLI commands: feature extraction (``gta extract``)."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app
from gta.cli.options import (
    data_option,
    device_option,
    genes_option,
    out_option,
    parse_genes,
    parse_samples,
    samples_file_option,
    samples_option,
    set_threads,
    threads_option,
)


@app.command("extract")
def extract_command(
    data: Path = data_option(),
    encoder: str = typer.Option("motif", "--encoder", "-e", help="Encoder name: motif (default, no weights) or "
                                "enformer."),
    weights: Path | None = typer.Option(
        None, "--weights", help="Local folder with the encoder's weights (enformer: config.json + model file)."
    ),
    out: Path = out_option(Path("features.zarr"), "Feature store folder to create or resume."),
    samples: str | None = samples_option("Personal haplotypes of these samples: all, or a comma-separated list "
                                         "(default: none, the reference only)."),
    samples_file: Path | None = samples_file_option(),
    individuals: str | None = typer.Option(None, "--individuals", hidden=True,
                                           help="Old spelling of -s/-S: none, all, a list or a file."),
    worker: int | None = typer.Option(None, "--worker", help="This worker's index k (default: $RANK or 0)."),
    workers: int | None = typer.Option(None, "--workers", help="Number of workers N (default: $WORLD_SIZE or 1)."),
    batch_size: int = typer.Option(4, "--batch-size", help="Sequences per encoder call."),
    genes: str | None = genes_option("Only these genes: a comma-separated list of ids/symbols, or @FILE (one per "
                                     "line; # comments). Default: every gene that passes --gene-type."),
    gene_type: str | None = typer.Option(None, "--gene-type", help="Encode genes of these types (comma-separated, "
                                         "e.g. protein_coding,lncRNA), or all. Default: protein_coding, or every "
                                         "gene --genes names. An annotation without gene types keeps every gene."),
    dtype: str = typer.Option("float16", "--dtype", help="Storage dtype: float16 (default) or float32."),
    cage_track: int | None = typer.Option(
        None, "--cage-track", help="enformer: also store this human head track (GM12878 CAGE = 5110)."
    ),
    rc_average: bool = typer.Option(False, "--rc-average", help="enformer: average with the reverse complement."),
    device: str = device_option("cpu, cuda, cuda:N or auto: CUDA when present for enformer; the motif encoder's "
                                "auto is its CPU scanner."),
    threads: int | None = threads_option(),
) -> None:
    """Encode gene windows (and personal haplotypes) into a resumable, shardable feature store."""
    from gta.errors import GtaInputError
    from gta.features.extract import extract

    set_threads(threads)
    gene_list = parse_genes(genes)
    if individuals is not None:
        if samples is not None or samples_file is not None:
            raise GtaInputError("--individuals is the old spelling of -s/--samples: give one of them")
        chosen: str | list[str] = individuals
    else:
        parsed = parse_samples(samples, samples_file)
        chosen = "none" if parsed is None else parsed
    options: dict = {}
    if encoder == "enformer":
        options.update(cage_track=cage_track, rc_average=rc_average, device=device)
    elif cage_track is not None or rc_average:
        raise typer.BadParameter("--cage-track and --rc-average apply to --encoder enformer only")
    elif encoder == "motif":
        if device != "auto":
            options["device"] = device
        if threads is not None:
            options["threads"] = threads
    extract(
        data,
        encoder=encoder,
        weights=weights,
        out=out,
        individuals=chosen,
        worker=worker,
        n_workers=workers,
        batch_size=batch_size,
        genes=gene_list,
        gene_type=gene_type or ("all" if gene_list else "protein_coding"),
        dtype=dtype,
        encoder_options=options,
    )
