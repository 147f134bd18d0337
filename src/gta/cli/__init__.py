"""Command-line interface: thin wrappers over public library functions.

Each command module registers its commands on ``gta.cli.app.app``. ``main`` maps ``GtaInputError`` to one
line on stderr and exit code 2; programming errors keep their traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from gta.cli.app import app
from gta.errors import GtaInputError

COMMAND_MODULES = (
    "data_commands",  # validate, sequence, prompt, variants, annotations build
    "sim_commands",  # simulate
    "feature_commands",  # extract
    "model_commands",  # train, predict
    "eval_commands",  # benchmark, demo
    "interpret_commands",  # interpret, score-variants
    "annotation_commands",  # annotations build
    "inspect_commands",  # sequence, variants
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"gta.cli.{_name}")


def main() -> None:
    try:
        rc = app(standalone_mode=False)
    except click.exceptions.ClickException as e:  # usage errors: a usage message, not a traceback
        e.show()
        sys.exit(2)
    except click.exceptions.Abort:
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
