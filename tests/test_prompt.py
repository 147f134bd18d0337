"""The prompt builder: golden strings, markers, length bounds, stats, templates, the shuffled control."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gta.model.prompt import (
    END_MARKER,
    NO_ANNOTATION,
    PROMPT_TEMPLATE_VERSION,
    START_MARKER,
    build_prompt,
    shuffle_annotations,
    stats_phrase,
)

TASK = "gene expression in lymphoblastoid cell lines (LCL), RNA-seq"
SPI1 = {
    "gene_id": "ENSG00000066336", "symbol": "SPI1", "name": "Spi-1 proto-oncogene", "gene_type": "protein_coding",
    "chrom": "chr11", "go_bp": "regulation of erythrocyte differentiation; TRAIL-activated apoptotic signaling "
    "pathway; defense response to tumor cell; interleukin-6-mediated signaling pathway",
    "description": "SPI1 (Spi-1 proto-oncogene) is a protein-coding gene on chr11.",
}


def test_golden_full_row() -> None:
    assert PROMPT_TEMPLATE_VERSION == "2"
    got = build_prompt(SPI1, TASK, {"gc": 0.4123, "n_variants": 12}, n_tokens=56)
    assert got == (
        "<|start_prompt|>Dataset: gene expression in lymphoblastoid cell lines (LCL), RNA-seq. "
        "Gene: SPI1 (Spi-1 proto-oncogene), protein-coding. Processes: regulation of erythrocyte differentiation; "
        "TRAIL-activated apoptotic signaling pathway; defense response to tumor cell; interleukin-6-mediated signaling "
        "pathway. Window: GC 41.2%, variants 12. "
        "Task: predict this gene's expression from the 56 sequence tokens that follow.<|end_prompt|>"
    )


def test_golden_missing_annotation() -> None:
    assert build_prompt(None, TASK, None) == (
        "<|start_prompt|>Dataset: gene expression in lymphoblastoid cell lines (LCL), RNA-seq. Gene: unknown gene. "
        "No annotation available. Task: predict this gene's expression from the sequence tokens that "
        "follow.<|end_prompt|>"
    )
    assert NO_ANNOTATION in build_prompt({"gene_id": "G7"}, TASK, None)
    assert "Gene: G7." in build_prompt({"gene_id": "G7", "name": float("nan")}, TASK, None)


def test_golden_user_description_and_empty_go() -> None:
    row = {"gene_id": "G1", "symbol": "ABC", "description": "  A made-up   kinase in B cells  "}
    assert build_prompt(row, "toy data.", {"gc_percent": 55}) == (
        "<|start_prompt|>Dataset: toy data. Gene: ABC. A made-up kinase in B cells. Window: GC 55.0%. "
        "Task: predict this gene's expression from the sequence tokens that follow.<|end_prompt|>"
    )
    no_go = {"symbol": "XIST", "name": "X inactive specific transcript", "gene_type": "ncRNA", "go_bp": "",
             "description": "ignored when the row has a go_bp field"}
    assert "Gene: XIST (X inactive specific transcript), non-coding RNA. No known biological processes. Task:" in (
        build_prompt(no_go, TASK, None))


def test_markers_well_formed_and_whitespace() -> None:
    p = build_prompt(SPI1, "two\n lines\tof  task", {"n_snvs": 3})
    assert p.startswith(START_MARKER) and p.endswith(END_MARKER)
    assert p.count("<|") == 2 and p.count("|>") == 2
    assert START_MARKER == "<|start_prompt|>" and END_MARKER == "<|end_prompt|>"
    assert "  " not in p and "\n" not in p and "\t" not in p


def test_long_fields_are_clipped() -> None:
    row = {"symbol": "LONG", "name": "very " * 40, "go_bp": "; ".join(f"term number {i} " + "x" * 70
                                                                        for i in range(12)),
           "gene_type": "protein_coding"}
    p = build_prompt(row, "word " * 200, {f"k{i}": i for i in range(20)})
    assert len(p) < 720
    assert "term number 7" in p and "term number 8" not in p and p.count("...") >= 3
    desc = build_prompt({"description": "word " * 300}, TASK, None)
    assert "word word..." in desc and len(desc) < 660


def test_stats_formatting_and_no_expression() -> None:
    assert stats_phrase({"gc_content": 0.5, "cpg": 12, "distal_share": 0.123456, "phased": True,
                         "mean_conservation": 2.0}) == (
        "Window: GC 50.0%, CpG 12, distal share 0.123, phased yes, mean conservation 2.")
    assert stats_phrase({}) == "" and stats_phrase(None) == ""
    for bad in ("expression", "mean_tpm", "target", "log_expr", "y_true"):
        with pytest.raises(ValueError, match="expression"):
            build_prompt(SPI1, TASK, {bad: 1.0})


def test_custom_template() -> None:
    p = build_prompt(SPI1, TASK, {"gc": 0.4}, template="{gene} | {task}")
    assert p == "<|start_prompt|>SPI1 (Spi-1 proto-oncogene), protein-coding. | " + TASK + ".<|end_prompt|>"
    with pytest.raises(ValueError, match="unknown field"):
        build_prompt(SPI1, TASK, None, template="{gene} {expression}")
    with pytest.raises(ValueError, match="markers"):
        build_prompt(SPI1, TASK, None, template="<|start_prompt|>{gene}")


def test_shipped_table_prompt_lengths() -> None:
    from gta.io.annotations import load_human_genes

    rows = load_human_genes().to_dict("records")
    lengths = np.array([len(build_prompt(r, TASK, {"gc": 0.41, "n_variants": 12, "cpg": 37}, n_tokens=56))
                        for r in rows])
    assert lengths.max() < 720 and 300 < np.median(lengths) < 420


@pytest.mark.slow
def test_token_budget_with_embedded_tokenizer() -> None:
    """Measured with SmolLM2's own tokenizer: median 109, max 177 tokens (3 window statistics, up to 8 GO terms)."""
    from transformers import AutoTokenizer

    from gta.io.annotations import load_human_genes
    from gta.resources import embedded_llm_gguf

    gguf = embedded_llm_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    rows = load_human_genes().to_dict("records")[::10]
    n = np.array([len(tok(build_prompt(r, TASK, {"gc": 0.41, "n_variants": 12, "cpg": 37}, n_tokens=56))
                      ["input_ids"]) for r in rows])
    assert np.median(n) <= 120 and n.max() <= 190 and n.min() >= 60


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), min_size=2, max_size=30),
       st.integers(0, 10))
def test_shuffle_is_a_deterministic_derangement(rows: dict[str, int], seed: int) -> None:
    rows = {k: (k, v) for k, v in rows.items()}  # values unique per key
    out = shuffle_annotations(rows, seed)
    assert out == shuffle_annotations(rows, seed)
    assert set(out) == set(rows)
    assert sorted(out.values()) == sorted(rows.values())
    assert all(out[k] != rows[k] for k in rows)


def test_shuffle_edge_cases() -> None:
    assert shuffle_annotations({"a": 1}) == {"a": 1}
    rows = {f"g{i}": i for i in range(50)}
    assert shuffle_annotations(rows, 0) != shuffle_annotations(rows, 1)


def test_prompt_module_does_not_import_io() -> None:
    code = "import sys, gta.model.prompt; print(sorted(m for m in sys.modules if m.startswith('gta.io')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
