"""The layout rules of docs/architecture.md that a grep can check: short functions, imports that run down the
layers only, one definition of the allele vocabulary."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gta"
MAX_LINES = 80


def _modules(package: str = "") -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module a file imports (at the top or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_no_function_is_over_80_lines():
    long = [f"{p.relative_to(SRC)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in _modules() for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > MAX_LINES]
    assert not long, long


def test_train_imports_nothing_from_evaluate():
    bad = {str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith("gta.evaluate"))
           for p in _modules("train")}
    assert not {k: v for k, v in bad.items() if v}


def test_readers_know_no_encoder_model_or_training():
    banned = ("gta.encoders", "gta.features", "gta.model", "gta.train", "gta.evaluate", "gta.interpret")
    bad = {str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith(banned)) for p in _modules("io")}
    assert not {k: v for k, v in bad.items() if v}, bad


def test_model_imports_no_file_io():
    banned = ("gta.io", "gta.sim", "gta.atomic", "gta.resources", "gta.llm_loader", "gta.hashing", "safetensors",
              "gguf", "pathlib", "shutil", "json")
    bad = {str(p.relative_to(SRC)): sorted(m for m in _imports(p) if m.startswith(banned)) for p in _modules("model")}
    assert not {k: v for k, v in bad.items() if v}


def test_one_builder_of_the_allele_label_and_one_reference_key():
    label = re.compile(r"\{[^{}]+\}:\{[^{}]+\}:\{[^{}]+\}:\{[^{}]+\}")  # an f-string chrom:pos:REF:ALT
    ref_key = re.compile(r"""^\s*REF(_KEY)?\s*=\s*["']ref["']""", re.M)
    labels = [str(p.relative_to(SRC)) for p in _modules() if label.search(p.read_text())]
    keys = [str(p.relative_to(SRC)) for p in _modules() if ref_key.search(p.read_text())]
    assert labels == ["io/alleles.py"] and keys == ["io/alleles.py"]
