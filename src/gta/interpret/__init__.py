"""gta.interpret: which sections of the input drive a prediction, and variant effect prediction.

* :func:`interpret` (``gta interpret``): per-bin importance by attention rollout, gradient x input and occlusion
  (:mod:`gta.interpret.importance`), written as figures, bedGraph/bigWig tracks and a top-k table;
* :func:`evaluate_importance`, :func:`importance_metrics`: AUPRC for the simulator's true elements;
* :func:`score_variants` (``gta score-variants``): predicted ALT-minus-REF effect of VCF alleles on each gene;
  :func:`variant_effect_metrics`: against the simulator's true variant effects.
"""

from gta.interpret.evaluate import importance_metrics, variant_effect_metrics
from gta.interpret.importance import (
    METHODS,
    attention_importance,
    attention_maps,
    gradxinput_importance,
    importance,
    occlusion_importance,
)
from gta.interpret.pipeline import InterpretResult, evaluate_importance, interpret
from gta.interpret.tracks import importance_track, write_bedgraph, write_bigwig
from gta.interpret.variants import ScoreSummary, VariantScorer, score_variants

__all__ = [
    "METHODS",
    "InterpretResult",
    "ScoreSummary",
    "VariantScorer",
    "attention_importance",
    "attention_maps",
    "evaluate_importance",
    "gradxinput_importance",
    "importance",
    "importance_metrics",
    "importance_track",
    "interpret",
    "occlusion_importance",
    "score_variants",
    "variant_effect_metrics",
    "write_bedgraph",
    "write_bigwig",
]
