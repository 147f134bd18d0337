"""The one reader of a user's YAML file (a manifest, a training, simulation or benchmark config): a file that is
missing, not UTF-8 text or not YAML is a GtaInputError naming the file (and the line), never a traceback; and the one
rule for a config value's type (``typed_value``, ``typed_fields``) and for keys it does not know
(``refuse_unknown``)."""

from __future__ import annotations

import types
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


def refuse_unknown(given: Any, known: Any, what: str = "key(s)", path: str | Path | None = None,
                   where: str = "", hint: str | None = None) -> None:
    """A GtaInputError "unknown {what} [...]{where}" naming the keys of the mapping ``given`` not in ``known``,
    with the known keys as the hint unless ``hint`` says otherwise."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise GtaInputError(f"unknown {what} {unknown}{where}", path, hint=hint or f"known keys: {sorted(known)}")


KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
CONTAINERS = {dict: "a mapping (indented key: value lines)", list: "a list ([a, b] or - lines)"}


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
    of that name (bool, int, float, str, or one of them or None); a dict or list field must hold a mapping or a list
    (its entries are its reader's to check); other fields pass as they are."""
    hints = typing.get_type_hints(cls)
    out = dict(raw)
    for key, value in raw.items():
        hint = hints.get(key)
        # the members of a union (int | None); a container's parameters (dict[str, Any], list[str]) are not the
        # value's type, so a mapping or a list passes here and its own reader checks its entries
        origin = typing.get_origin(hint)
        if origin in CONTAINERS and not isinstance(value, origin):
            raise GtaInputError(f"{prefix}{key} must be {CONTAINERS[origin]}, got {value!r}", path)
        kinds = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
        kind = next((k for k in kinds if k in KINDS), None)
        if kind is not None and not (value is None and type(None) in kinds):
            out[key] = typed_value(kind, value, prefix + str(key), path)
    return out
