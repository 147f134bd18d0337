"""gta.train: training GTA with Lightning (CPU by default; GPU, DDP and FSDP through Lightning), resumable
safetensors checkpoints, and prediction on reference and personal genomes.

``train(manifest, features, out, config=None, ...) -> RunResult`` and ``predict(run, manifest, features, out)
-> DataFrame`` are what ``gta train`` and ``gta predict`` call; ``gene_prompt(dataset, gene)`` is what
``gta prompt`` prints.
"""

from gta.train.config import TrainConfig, default_config, load_config
from gta.train.predict import predict
from gta.train.prompts import gene_prompt
from gta.train.run import RunResult, train

__all__ = ["RunResult", "TrainConfig", "default_config", "gene_prompt", "load_config", "predict", "train"]
