"""Loading the frozen LLM from files: the embedded GGUF (de-quantised once into a safetensors cache under
:func:`gta.resources.cache_dir`), a ``.gguf`` path, a local Hugging Face folder, or the tiny random test model, and
the provenance hash of what was loaded. The model itself (:class:`gta.model.llm.FrozenLLM`, the prompt cache,
sharding) knows nothing of files; this module builds it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, LlamaConfig, LlamaModel

from gta.errors import GtaInputError
from gta.hashing import sha256_file, sha256_state_dict
from gta.resources import cache_dir, embedded_llm_gguf

if TYPE_CHECKING:
    from gta.model.llm import FrozenLLM

log = logging.getLogger(__name__)

SOURCES = '"embedded", "tiny-random", a .gguf file or a local Hugging Face folder (config.json + safetensors)'
_HASH_PREFIX = 16 << 20  # bytes of a GGUF hashed for its cache key (with its size)


def _gguf_key(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(_HASH_PREFIX))
    h.update(str(path.stat().st_size).encode())
    return h.hexdigest()[:20]


def dequantised_folder(gguf: str | Path) -> Path:
    """Folder with a GGUF's float32 weights as safetensors + config + tokenizer, made once (atomically) and cached."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    gguf = Path(gguf)
    folder = cache_dir() / "llm" / _gguf_key(gguf)
    if (folder / "gta-source.json").exists():
        return folder
    log.info("de-quantising %s once into %s", gguf, folder)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        weights = dict(model.state_dict())
        if model.config.tie_word_embeddings:  # the head is the embedding table: keep one named copy
            weights.pop("lm_head.weight", None)
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / "model.safetensors"))
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = {"gguf": str(gguf), "size": gguf.stat().st_size, "key": folder.name}
        (tmp / "gta-source.json").write_text(json.dumps(source, indent=1))
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished first: keep its copy
            if not (folder / "gta-source.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def _load_folder(folder: Path, num_layers: int | None, dtype: torch.dtype, source: str) -> FrozenLLM:
    config = AutoConfig.from_pretrained(folder)
    total = int(config.num_hidden_layers)
    if num_layers is not None and not 1 <= num_layers <= total:
        raise GtaInputError(f"llm_layers={num_layers} but the LLM has {total} layers", path=folder,
                            hint=f"choose 1..{total} or leave it empty for all")
    from gta.model.llm import FrozenLLM, keep_first_layers_

    base = AutoModel.from_pretrained(folder, config=config, dtype=dtype)  # memory-mapped: all layers cost ~0.2 s
    if num_layers is not None and num_layers < total:
        keep_first_layers_(base, num_layers)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return FrozenLLM(base, tokenizer, source=source)


def load_llm(source: str = "embedded", num_layers: int | None = None, dtype: torch.dtype = torch.float32) -> FrozenLLM:
    """Load the frozen LLM: "embedded" (the shipped SmolLM2 GGUF), a .gguf path, a HF folder, or "tiny-random"."""
    if source == "tiny-random":
        return tiny_random_llm(num_layers=num_layers or 2, dtype=dtype)
    if source == "embedded":
        path = embedded_llm_gguf()
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise GtaInputError(f"LLM {source!r} not found", path=path, hint=f"use {SOURCES}")
    if path.is_file():
        if path.suffix != ".gguf":
            raise GtaInputError("not a GGUF file", path=path, hint=f"use {SOURCES}")
        return _load_folder(dequantised_folder(path), num_layers, dtype, source=str(path))
    if not (path / "config.json").exists():
        raise GtaInputError("folder has no config.json, so it is not a Hugging Face model", path=path,
                            hint=f"use {SOURCES}")
    return _load_folder(path, num_layers, dtype, source=str(path))


@functools.lru_cache(maxsize=1)
def embedded_tokenizer():
    """The embedded LLM's tokenizer (from the de-quantised cache when present, else read from the GGUF)."""
    gguf = embedded_llm_gguf()
    folder = cache_dir() / "llm" / _gguf_key(gguf)
    if (folder / "gta-source.json").exists():
        return AutoTokenizer.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def tiny_random_llm(num_layers: int = 2, hidden: int = 64, seed: int = 0, dtype: torch.dtype = torch.float32,
                    tokenizer=None) -> FrozenLLM:
    """A small randomly initialised Llama with the embedded tokenizer (vocabulary matched), for fast tests."""
    tokenizer = tokenizer or embedded_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = LlamaModel(config).to(dtype)
    from gta.model.llm import FrozenLLM

    return FrozenLLM(base, tokenizer, source="tiny-random")


def llm_identity(llm: FrozenLLM) -> dict:
    """Provenance: source path, sha256 (of the file/weights given, else of the parameters), layers used, width."""
    if llm._identity is None:
        path = Path(llm.source)
        if llm.source and path.is_file():
            digest = sha256_file(path)
        elif llm.source and path.is_dir():
            h = hashlib.sha256()
            for f in sorted(path.glob("*.safetensors")):
                h.update(sha256_file(f).encode())
            digest = h.hexdigest()
        else:
            digest = sha256_state_dict(llm.hf.state_dict())
        llm._identity = {"path": llm.source, "sha256": digest, "n_layers": llm.n_layers, "d_llm": llm.d_llm}
    return dict(llm._identity)
