"""gta.model: the frozen LLM (`llm`), patching + token alignment (`align`) and the composed GTA model (`gta`).

Knows feature arrays and prompt strings, never files of a data set (no gta.io / gta.sim imports).
"""

from gta.model.align import LinearAlignment, PatchEmbedding, Patcher, ReprogrammingLayer, TextPrototypes
from gta.model.gta import GTA, GTAConfig, build_model
from gta.model.llm import FrozenLLM, random_twin

__all__ = [
    "GTA",
    "FrozenLLM",
    "GTAConfig",
    "LinearAlignment",
    "PatchEmbedding",
    "Patcher",
    "ReprogrammingLayer",
    "TextPrototypes",
    "build_model",
    "random_twin",
]
