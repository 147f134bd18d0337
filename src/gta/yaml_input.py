"""The one reader of a user's YAML file (a manifest, a training, simulation or benchmark config): a file that is
missing, not UTF-8 text or not YAML is a GtaInputError naming the file (and the line), never a traceback."""

from __future__ import annotations

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
