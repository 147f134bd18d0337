"""CLI commands for inspecting personal haplotypes: ``gta sequence`` and ``gta variants``."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app
from gta.cli.options import data_option, out_option, overwrite_option, refuse_existing

_DATA = data_option()
_GENE = typer.Option(..., "--gene", "-g", help="Gene id (with or without version) or symbol.")
_DEFAULT = " Default: the manifest's variant_policy, else {}."
_UNPHASED = typer.Option(None, "--unphased", help="Unphased heterozygous genotypes: auto (ref, but refuse a sample "
                         "with no phased call) | ref | as-phased | error." + _DEFAULT.format("auto"))
_MISSING = typer.Option(None, "--missing", help="Missing genotypes: ref | error." + _DEFAULT.format("ref"))
_MULTI = typer.Option(None, "--multiallelic", help="Multi-allelic records: split | error | ref."
                      + _DEFAULT.format("split"))
_PASS = typer.Option(None, "--pass-only/--all-filters", help="Use only records whose FILTER is PASS (or all records)."
                     + _DEFAULT.format("all records"))


def _overrides(unphased: str | None, missing: str | None, multiallelic: str | None,
               pass_only: bool | None) -> dict[str, object]:
    """The policy fields given on the command line; they override the manifest's variant_policy."""
    given = {"unphased": unphased, "missing": missing, "multiallelic": multiallelic, "filter_pass": pass_only}
    return {k: v for k, v in given.items() if v is not None}


@app.command("sequence")
def sequence_command(
    data: Path = _DATA,
    gene: str = _GENE,
    sample: str = typer.Option(None, "--sample", "-s", help="Sample whose haplotype to show (default: reference)."),
    haplotype: int = typer.Option(1, "--haplotype", "-H", min=1, max=2, help="Haplotype 1 or 2 of --sample."),
    flank: int = typer.Option(None, "--flank", min=0, help="Show only the TSS and N bases on each side."),
    out: Path = out_option(None, "Write the FASTA here instead of standard output."),
    overwrite: bool = overwrite_option(),
    unphased: str | None = _UNPHASED,
    missing: str | None = _MISSING,
    multiallelic: str | None = _MULTI,
    pass_only: bool | None = _PASS,
) -> None:
    """Print the exact input window the encoder sees for a gene, as FASTA (TSS at index input_len // 2)."""
    from gta.atomic import atomic_write_text
    from gta.inspect import sequence

    if out is not None:
        refuse_existing([out], overwrite)
    text = sequence(data, gene, sample, haplotype, flank,
                    overrides=_overrides(unphased, missing, multiallelic, pass_only))
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
    unphased: str | None = _UNPHASED,
    missing: str | None = _MISSING,
    multiallelic: str | None = _MULTI,
    pass_only: bool | None = _PASS,
) -> None:
    """List the variants in a gene's window: offset from the TSS, genotypes, and what the policy did."""
    from gta.inspect import variants

    text = variants(data, gene, sample, overrides=_overrides(unphased, missing, multiallelic, pass_only))
    typer.echo(text, nl=False)
