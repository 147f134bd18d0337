"""The text prompt the frozen LLM reads before a gene's sequence tokens.

One function, :func:`build_prompt`, turns an annotation row (a plain dict), the data set's task description and
window statistics into one string between fixed markers. It takes plain values only: ``gta.model`` knows
nothing about files (``gta.io.annotations`` reads them). The prompt never carries expression values.

Default template (version :data:`PROMPT_TEMPLATE_VERSION`), shown for SPI1 with two window statistics::

    <|start_prompt|>Dataset: gene expression in lymphoblastoid cell lines (LCL), RNA-seq. Gene: SPI1 (Spi-1
    proto-oncogene), protein-coding. Processes: regulation of erythrocyte differentiation; ... Window: GC 41.2%,
    variants 12. Task: predict this gene's expression from the 56 sequence tokens that follow.<|end_prompt|>

(one line; wrapped here). Rules, so the prompt stays within ~60-200 tokens of SmolLM2-135M:

* **gene**: ``symbol (name), type`` from the row's ``symbol`` (else ``gene_id``), ``name`` and ``gene_type``.
* **annotation**: a row with a ``go_bp`` column (the shipped table, or a user file that has one) gives its first
  :data:`GO_TERMS_MAX` terms, cut to :data:`ANNOTATION_MAX_CHARS`; an empty ``go_bp`` says so. Without ``go_bp``,
  the row's free-text ``description`` is used, cut at a word boundary. No row, or neither field: "No annotation
  available."
* **stats**: every key given, in order, at most :data:`STATS_MAX`: ``GC 41.2%`` for ``gc``/``gc_content``
  (fractions) or ``gc_percent``, integers as is, floats to 3 significant digits; keys that look like expression
  (``expr``, ``tpm``, ``target``, ...) are refused.
* **task**: the data set description, at most :data:`TASK_MAX_WORDS` words.

Shuffled-annotation control: ``build_prompt(shuffle_annotations(rows, seed)[gene_id], ...)`` gives each gene the
whole annotation row (symbol included) of another gene (a derangement), so only the text's link to the gene is
broken, not its form or length distribution.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Mapping
from typing import Any, TypeVar

PROMPT_TEMPLATE_VERSION = "2"  # 2: up to 8 GO terms in 400 characters (1: 3 in 140)
START_MARKER = "<|start_prompt|>"
END_MARKER = "<|end_prompt|>"
DEFAULT_TEMPLATE = (
    "Dataset: {task} Gene: {gene} {annotation} {stats} "
    "Task: predict this gene's expression from {tokens} that follow."
)
FIELDS = ("task", "gene", "annotation", "stats", "tokens")
GO_TERMS_MAX = 8  # 3 terms in 140 characters kept less of the annotation (docs/learning.md, entry 13)
ANNOTATION_MAX_CHARS = 400
GO_TERM_MAX_CHARS = 64
NAME_MAX_CHARS = 48
TASK_MAX_WORDS = 24
STATS_MAX = 6
NO_ANNOTATION = "No annotation available."
NO_GO = "No known biological processes."
TYPE_WORDS = {"protein_coding": "protein-coding", "ncRNA": "non-coding RNA", "lncRNA": "long non-coding RNA",
              "biological_region": "biological region"}
STAT_LABELS = {"n_variants": "variants", "n_snvs": "SNVs", "n_indels": "indels", "n_haplotypes": "haplotypes",
               "cpg": "CpG", "cpg_islands": "CpG islands", "n_motif_hits": "motif hits", "n_genes": "genes nearby"}
_GC_FRACTION_KEYS = ("gc", "gc_content", "gc_fraction")
_FORBIDDEN = re.compile(r"expr|tpm|fpkm|rpkm|\bcpm|target|label|y_true|y_pred", re.IGNORECASE)

T = TypeVar("T")


def _clip(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters at a word boundary, marking the cut with '...'."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + "..."


def _text(value: Any) -> str:
    """A field as stripped text; None and NaN (missing table cells) are empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def gene_phrase(annotation: Mapping[str, Any] | None) -> str:
    """``SPI1 (Spi-1 proto-oncogene), protein-coding.``; ``unknown gene.`` without a row."""
    row = annotation or {}
    symbol = _text(row.get("symbol")) or _text(row.get("gene_id"))
    if not symbol:
        return "unknown gene."
    text = symbol
    name = _clip(_text(row.get("name")), NAME_MAX_CHARS)
    if name and name.upper() != symbol.upper():
        text += f" ({name})"
    gtype = _text(row.get("gene_type"))
    if gtype and gtype not in ("unknown", "other"):
        text += ", " + TYPE_WORDS.get(gtype, gtype.replace("_", " "))
    return text + "."


def annotation_phrase(annotation: Mapping[str, Any] | None) -> str:
    """GO processes (if the row has a ``go_bp`` field), else the free-text description, else a neutral text."""
    row = annotation or {}
    if "go_bp" in row:
        terms = [t.strip() for t in _text(row.get("go_bp")).split(";") if t.strip()]
        if not terms:
            return NO_GO
        text = "Processes:"
        for i, term in enumerate(terms[:GO_TERMS_MAX]):
            piece = (" " if i == 0 else "; ") + _clip(term, GO_TERM_MAX_CHARS)
            if i > 0 and len(text) + len(piece) + 1 > ANNOTATION_MAX_CHARS:
                break
            text += piece
        return _clip(text, ANNOTATION_MAX_CHARS - 1) + "."
    description = _text(row.get("description"))
    if description:
        return _sentence(_clip(description, ANNOTATION_MAX_CHARS))
    return NO_ANNOTATION


def _format_value(value: float | int | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    return f"{value:.3g}"


def stats_phrase(stats: Mapping[str, float | int] | None) -> str:
    """``Window: GC 41.2%, variants 12.`` (empty string for no statistics)."""
    if not stats:
        return ""
    parts = []
    for key, value in list(stats.items())[:STATS_MAX]:
        if _FORBIDDEN.search(key):
            raise ValueError(f"prompt statistics must not carry expression values or targets: {key!r}")
        low = key.lower()
        if low in _GC_FRACTION_KEYS or low == "gc_percent":
            pct = float(value) * (100.0 if low in _GC_FRACTION_KEYS and float(value) <= 1.0 else 1.0)
            parts.append(f"GC {pct:.1f}%")
        else:
            parts.append(f"{STAT_LABELS.get(low, key.replace('_', ' '))} {_format_value(value)}")
    return "Window: " + ", ".join(parts) + "."


def task_phrase(task: str) -> str:
    words = str(task or "").split()
    if not words:
        return "gene expression."
    text = " ".join(words[:TASK_MAX_WORDS])
    return _sentence(text + ("..." if len(words) > TASK_MAX_WORDS else ""))


def check_template(template: str) -> None:
    """Raise ValueError for a template with unknown fields or with the markers (which build_prompt adds)."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = sorted(names - set(FIELDS))
    if unknown:
        raise ValueError(f"prompt template uses unknown field(s) {unknown}; allowed: {list(FIELDS)}")
    if START_MARKER in template or END_MARKER in template:
        raise ValueError("prompt template must not contain the markers; build_prompt adds them")


def build_prompt(
    annotation: Mapping[str, Any] | None,
    task: str,
    stats: Mapping[str, float | int] | None = None,
    template: str | None = None,
    n_tokens: int | None = None,
) -> str:
    """The prompt for one gene, between :data:`START_MARKER` and :data:`END_MARKER`, whitespace normalised.

    ``annotation``: a row as a plain dict (keys used: symbol, gene_id, name, gene_type, go_bp, description) or
    ``None``. ``task``: the data set description. ``stats``: window statistics (never expression). ``template``:
    text with any of the fields ``{task} {gene} {annotation} {stats} {tokens}`` (default
    :data:`DEFAULT_TEMPLATE`). ``n_tokens``: number of sequence tokens that follow, if known.
    """
    template = DEFAULT_TEMPLATE if template is None else template
    check_template(template)
    values = {
        "task": task_phrase(task),
        "gene": gene_phrase(annotation),
        "annotation": annotation_phrase(annotation),
        "stats": stats_phrase(stats),
        "tokens": f"the {n_tokens} sequence tokens" if n_tokens else "the sequence tokens",
    }
    body = " ".join(template.format_map(values).split())
    return START_MARKER + body + END_MARKER


def shuffle_annotations(annotations: Mapping[str, T], seed: int = 0) -> dict[str, T]:
    """Give every gene another gene's annotation row (a derangement; deterministic for a seed).

    For the shuffled-prompt control. With fewer than two genes nothing can move and the mapping is returned as is.
    """
    keys = sorted(annotations)
    if len(keys) < 2:
        return dict(annotations)
    order = keys[:]
    random.Random(seed).shuffle(order)
    # each gene in the shuffled cycle takes the row of the next one: nobody keeps its own
    return {g: annotations[order[(i + 1) % len(order)]] for i, g in enumerate(order)}
