"""CLI commands on data sets: ``gta validate``."""

from __future__ import annotations

from pathlib import Path

import typer

from gta.cli.app import app
from gta.cli.options import data_option


@app.command()
def validate(
    data: Path = data_option(),
    quick: bool = typer.Option(False, "--quick", help="Skip the full FASTA scan for bytes that are not bases."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON to this file."),
) -> None:
    """Read every file the manifest names and report whether the data set is usable (exit 0) or not (exit 2)."""
    import json

    from rich.console import Console

    from gta.atomic import atomic_write_text
    from gta.io.validate import UnusableDatasetError, render_report
    from gta.io.validate import validate as run_validate

    error = None
    try:
        report = run_validate(data, scan_genome=not quick, progress=True)
    except UnusableDatasetError as e:  # the table and --json still show every row; the one-line error follows
        report, error = e.report, e
    Console().print(render_report(report))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2))
    if error is not None:
        raise error
    if not report.ok:
        raise SystemExit(report.exit_code)
