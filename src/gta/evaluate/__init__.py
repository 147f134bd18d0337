"""gta.evaluate: metrics, baselines, results.json and the benchmark report.

Takes prediction tables (``gene_id, sample, haplotype, split, y_true, y_pred``) and feature arrays; knows nothing
about how a model was trained. Heavy parts (torch, transformers, matplotlib) load only when their module is imported.
"""

from gta.evaluate.metrics import by_distal_share, cross_gene, cross_individual, noise_ceiling
from gta.evaluate.results import (
    Results,
    read_results,
    recompute_metrics,
    record_model,
    record_not_run,
    verify_results,
    write_results,
)

__all__ = [
    "Results",
    "by_distal_share",
    "cross_gene",
    "cross_individual",
    "noise_ceiling",
    "read_results",
    "recompute_metrics",
    "record_model",
    "record_not_run",
    "render_report",
    "verify_results",
    "write_results",
]


def render_report(results_json, predictions_dir, out_html, markdown: bool = True):
    """See ``gta.evaluate.report.render_report`` (imported lazily: it pulls in matplotlib)."""
    from gta.evaluate.report import render_report as _render

    return _render(results_json, predictions_dir, out_html, markdown=markdown)
