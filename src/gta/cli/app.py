"""The typer application object that every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gta",
    help="Genetic sequence Token Alignment: predict gene expression from long-range DNA sequence "
    "with a frozen language model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
annotations_app = typer.Typer(help="Gene annotation tables (prompts are built from them).", no_args_is_help=True)
app.add_typer(annotations_app, name="annotations")
