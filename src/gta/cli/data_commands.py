"""CLI commands: data_commands."""

from __future__ import annotations

from gta.cli.app import app  # noqa: F401
