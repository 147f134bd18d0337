"""CLI commands for inspecting personal haplotypes: ``gta sequence`` and ``gta variants``."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app

_DATA = typer.Option(..., "--data", "-d", help="Data set manifest (dataset.yaml).")
_GENE = typer.Option(..., "--gene", "-g", help="Gene id (with or without version) or symbol.")
_UNPHASED = typer.Option("ref", "--unphased", help="Unphased heterozygous genotypes: ref | as-phased | error.")
_MISSING = typer.Option("ref", "--missing", help="Missing genotypes: ref | error.")
_PASS = typer.Option(False, "--pass-only", help="Use only records whose FILTER is PASS.")


def _policy(unphased: str, missing: str, pass_only: bool):
    from gta.io.variants import HaplotypePolicy

    return HaplotypePolicy(unphased=unphased, missing=missing, filter_pass=pass_only)


@app.command("sequence")
def sequence_command(
    data: Path = _DATA,
    gene: str = _GENE,
    sample: str = typer.Option(None, "--sample", "-s", help="Sample whose haplotype to show (default: reference)."),
    haplotype: int = typer.Option(1, "--haplotype", "-H", min=1, max=2, help="Haplotype 1 or 2 of --sample."),
    flank: int = typer.Option(None, "--flank", min=0, help="Show only the TSS and N bases on each side."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the FASTA here instead of standard output."),
    unphased: str = _UNPHASED,
    missing: str = _MISSING,
    pass_only: bool = _PASS,
) -> None:
    """Print the exact input window the encoder sees for a gene, as FASTA (TSS at index input_len // 2)."""
    from gta.io.atomic import atomic_write_text
    from gta.io.haplotypes import sequence

    text = sequence(data, gene, sample, haplotype, flank, _policy(unphased, missing, pass_only))
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}")


@app.command("variants")
def variants_command(
    data: Path = _DATA,
    gene: str = _GENE,
    sample: str = typer.Option(None, "--sample", "-s", help="Show this sample (default: the first 8)."),
    unphased: str = _UNPHASED,
    missing: str = _MISSING,
    pass_only: bool = _PASS,
) -> None:
    """List the variants in a gene's window: offset from the TSS, genotypes, and what the policy did."""
    from gta.io.haplotypes import variants

    typer.echo(variants(data, gene, sample, _policy(unphased, missing, pass_only)), nl=False)
