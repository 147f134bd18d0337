"""Command-line interface: thin wrappers over public library functions.

Each command module registers its commands on ``gta.cli.app.app``. ``main`` maps every usage error (an unknown
command or option, a missing option, a bad value) and every ``GtaInputError`` to one line on stderr and exit code
2; programming errors keep their traceback. The options every command shares are spelled as in
:mod:`gta.cli.options`.

typer 0.2x ships its own copy of click (``typer._click``), whose exceptions are not ``click``'s: the classes are
taken from the click that typer actually uses (the module of ``typer.BadParameter``), never from ``import click``.
"""

from __future__ import annotations

import importlib
import sys

import typer

from gta.cli.app import app
from gta.errors import GtaInputError

COMMAND_MODULES = (
    "data_commands",  # validate
    "sim_commands",  # simulate
    "feature_commands",  # extract
    "model_commands",  # train, predict, prompt
    "eval_commands",  # benchmark, demo
    "interpret_commands",  # interpret, score-variants
    "annotation_commands",  # annotations build
    "inspect_commands",  # sequence, variants
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"gta.cli.{_name}")

# the click typer runs on: typer._click (typer >= 0.2x) or click itself (older typer)
_click = importlib.import_module(typer.BadParameter.__module__.rsplit(".", 1)[0])
_ClickException = _click.ClickException
_Abort = tuple({_click.exceptions.Abort if hasattr(_click.exceptions, "Abort") else typer.Abort, typer.Abort})


def _usage_line(e) -> str:
    """One line for a click usage error: what is wrong, and where the command's help is."""
    text = " ".join(str(e.format_message()).split())
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        text += f" (see '{ctx.command_path} -h')"
    return text


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        rc = typer.main.get_command(app).main(args=args, prog_name="gta", standalone_mode=False)
    except _ClickException as e:  # usage errors: one line, exit 2, no traceback
        if type(e).__name__ == "NoArgsIsHelpError":  # `gta` or `gta annotations` alone: the help, exit 2
            e.show()
            sys.exit(2)
        print(f"gta: error: {_usage_line(e)}", file=sys.stderr)
        sys.exit(2)
    except _Abort:
        print("gta: aborted", file=sys.stderr)
        sys.exit(130)
    except GtaInputError as e:
        print(f"gta: error: {e.one_line()}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("gta: interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(rc, int) and rc:
        sys.exit(rc)


__all__ = ["app", "main"]
