"""The one reader of a user's YAML file (a manifest, a training, simulation or benchmark config): a file that is
missing, not UTF-8 text or not YAML is a GtaInputError naming the file (and the line), never a traceback; and the one
rule for a config value's type (``typed_value``, ``typed_fields``)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml

from gta.errors import GtaInputError


def read_yaml(path: str | Path, kind: str = "YAML file", hint: str | None = None) -> Any:
    """The content of the YAML file at ``path``; ``kind`` names it in errors ("training config"), ``hint`` says
    what to pass instead when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise GtaInputError(f"{kind} not found", path, hint=hint)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise GtaInputError(f"{kind} is not UTF-8 text", path, hint=f"a {kind} is a small YAML file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise GtaInputError(f"not valid YAML: {getattr(e, 'problem', e)}", path,
                            None if mark is None else mark.line + 1) from None


KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def typed_value(kind: type, value: Any, name: str, path: str | Path | None = None) -> Any:
    """``value`` if it is a ``kind`` (bool, int, float or str; an int given for a float becomes a float, a bool is
    not a number), else a GtaInputError naming ``name`` and what it must be."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise GtaInputError(f"{name} must be {KINDS[kind]}, got {value!r}", path)


def typed_fields(cls: type, raw: dict[str, Any], path: str | Path | None = None, prefix: str = "") -> dict[str, Any]:
    """``raw`` with each value checked by :func:`typed_value` against the annotation of the dataclass ``cls``'s field
    of that name (bool, int, float, str, or one of them or None; other fields pass as they are)."""
    hints = typing.get_type_hints(cls)
    out = dict(raw)
    for key, value in raw.items():
        kinds = typing.get_args(hints.get(key)) or (hints.get(key),)
        kind = next((k for k in kinds if k in KINDS), None)
        if kind is not None and not (value is None and type(None) in kinds):
            out[key] = typed_value(kind, value, prefix + str(key), path)
    return out
