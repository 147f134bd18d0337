"""The typer application object that every command module registers on.

Every command gets ``-h`` (as ``--help``) and ``--version``: ``GtaTyper.command`` adds the eager ``--version``
flag to each command's signature, so the typer app itself (and CliRunner on it) has them, not only ``main``.
"""

from __future__ import annotations

import functools
import inspect

import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}
_VERSION_PARAM = "gta_version_"


def _print_version(value: bool) -> None:
    if value:
        from gta import __version__

        typer.echo(f"gta {__version__}")
        raise typer.Exit(0)


def version_option():
    return typer.Option(False, "--version", callback=_print_version, is_eager=True,
                        help="Print gta's version and exit.")


def _with_version(f):
    """``f`` with a ``--version`` flag added to its typer signature (the flag never reaches ``f``)."""
    sig = inspect.signature(f, eval_str=True)
    if _VERSION_PARAM in sig.parameters:
        return f

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        kwargs.pop(_VERSION_PARAM, None)
        return f(*args, **kwargs)

    extra = inspect.Parameter(_VERSION_PARAM, inspect.Parameter.KEYWORD_ONLY, default=version_option(),
                              annotation=bool)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()]
    wrapper.__signature__ = sig.replace(parameters=[*params, extra])
    wrapper.__annotations__ = {**{p.name: p.annotation for p in params}, _VERSION_PARAM: bool}
    return wrapper


class GtaTyper(typer.Typer):
    """typer.Typer whose commands all take ``--version`` and ``-h``."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorator(f):
            register(_with_version(f))
            return f

        return decorator


def _root(version: bool = version_option()) -> None:  # noqa: B008
    """Genetic sequence Token Alignment: predict gene expression from long-range DNA sequence with a frozen
    language model."""


app = GtaTyper(
    name="gta",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
)
app.callback()(_root)
annotations_app = GtaTyper(help="Gene annotation tables (prompts are built from them).", no_args_is_help=True,
                           context_settings=CONTEXT)
app.add_typer(annotations_app, name="annotations")
