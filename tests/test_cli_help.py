"""Every command and every option of the CLI says what it does in --help."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

import gta.cli  # noqa: F401 - registers every command
from fixtures import cli_commands
from gta.cli.app import app


def test_every_command_and_option_has_help():
    root = typer.main.get_command(app)
    found = dict(cli_commands(root))
    expected = {"validate", "simulate", "extract", "train", "predict", "benchmark", "interpret", "score-variants",
                "demo", "sequence", "prompt", "variants"}
    assert expected <= {path[-1] for path in found}
    assert ("annotations", "build") in found
    missing = [f"{' '.join(path)} {p.opts[0]}" for path, cmd in found.items() for p in cmd.params
               if p.param_type_name == "option" and not (getattr(p, "help", "") or "").strip()]
    assert not missing, missing
    undocumented = [" ".join(path) for path, cmd in found.items() if not (cmd.help or "").strip()]
    assert not undocumented, undocumented
    for path in found:
        res = CliRunner().invoke(app, [*path, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, path
