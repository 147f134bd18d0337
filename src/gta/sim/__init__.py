"""gta.sim: the embedded benchmark, a simulated population genome with a planted long-range regulatory grammar.

``simulate(preset, seed, out)`` writes genome.fa, genes.gtf, variants.vcf.gz, expression.tsv, annotations.tsv,
truth/ and dataset.yaml, and returns the manifest path. See docs/simulator.md for the generative model.
"""

from gta.sim.config import PRESETS, SimConfig, make_config
from gta.sim.simulate import noise_ceiling, simulate

__all__ = ["PRESETS", "SimConfig", "make_config", "noise_ceiling", "simulate"]
