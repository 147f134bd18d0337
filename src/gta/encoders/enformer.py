"""The ``enformer`` encoder: the enformer-pytorch trunk, loaded from a local folder (never downloaded).

The folder holds ``config.json`` (an ``EnformerConfig``) and the weights, either ``model.safetensors`` (what
``save_enformer`` writes) or ``pytorch_model.bin`` (the layout of a local copy of EleutherAI/enformer-official-rough,
read with ``torch.load(weights_only=True)``, never a full unpickle). Loading is strict: a missing or unexpected key
is an error, except BatchNorm ``num_batches_tracked`` counters and keys that alias an already loaded tensor (the
model registers its stem/tower/transformer twice, which is also why ``save_pretrained`` fails under transformers 5).

Features: the trunk embeddings of the central ``output_bins`` bins, ``[B, output_bins, 2 * dim]`` (3,072 for the
published model), optionally followed by one head track (``cage_track``; the human head's GM12878 CAGE track is
``GM12878_CAGE_TRACK`` = 5110, the column used for LCL CAGE in published Enformer analyses, e.g. Huang et al. 2023,
Nat Genet; targets_human.txt row "CAGE:B lymphoblastoid cell line: GM12878 ENCODE, biol_"). ``embeddings=False``
keeps only the track (a small store for the Enformer baseline). Inference runs under ``torch.inference_mode`` in
batches, bf16 autocast by default (fp16 on GPUs without bf16), optionally averaged with the reverse-complement pass
(output bins flipped back). ``device="auto"`` is ``cuda:{LOCAL_RANK}`` when CUDA is available (one GPU per
torchrun worker; ``gta.devices.choose_device``), else the CPU.

Geometry: bins are 2**num_downsamples = 128 bp; any ``input_len`` that is a multiple of 128 works, and the crop is
set to ``output_bins``. The published weights use TensorFlow's gamma positional features, defined for 1,536 input
bins only: ``tf_gamma=None`` turns them on exactly when the geometry has 1,536 input bins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gta.devices import choose_device
from gta.encoders.base import BaseEncoder, register_encoder
from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.hashing import sha256_files, sha256_state_dict

GM12878_CAGE_TRACK = 5110
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def save_enformer(model: Any, folder: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (the transformers-5-safe way; see the module docstring)."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"))
    return folder


def load_enformer(folder: str | Path) -> tuple[Any, Path]:
    """An ``Enformer`` from a local folder, loaded strictly; returns (model, weights file)."""
    import torch
    from enformer_pytorch import Enformer
    from enformer_pytorch.config_enformer import EnformerConfig

    folder = Path(folder).expanduser()
    if not (folder / "config.json").exists():
        raise GtaInputError(
            "no config.json in the Enformer weights folder",
            folder,
            hint="pass --weights DIR holding config.json and model.safetensors or pytorch_model.bin",
        )
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).exists()), None)
    if weights is None:
        raise GtaInputError(f"no weights file ({' or '.join(WEIGHT_FILES)}) in the Enformer folder", folder)
    model = Enformer(EnformerConfig.from_pretrained(str(folder), local_files_only=True))
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling refusal is a bad file for the user
            raise GtaInputError(f"cannot read Enformer weights: {e}", weights) from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise GtaInputError(f"Enformer weights do not fit config.json: {str(e).splitlines()[0]}", weights) from None
    own = model.state_dict()
    loaded_ptrs = {own[k].data_ptr() for k in state if k in own}
    missing = [k for k in missing if not k.endswith("num_batches_tracked") and own[k].data_ptr() not in loaded_ptrs]
    if missing or unexpected:
        raise GtaInputError(
            f"Enformer weights do not match the architecture: missing {missing[:3]}, unexpected {unexpected[:3]}",
            weights,
        )
    return model.eval(), weights


@register_encoder("enformer")
class EnformerEncoder(BaseEncoder):
    """Enformer trunk embeddings (+ an optional head track) of the central output bins."""

    name = "enformer"

    def __init__(
        self,
        geometry: Geometry | None = None,
        weights: str | Path | None = None,
        model: Any = None,
        cage_track: int | None = None,
        head: str = "human",
        embeddings: bool = True,
        rc_average: bool = False,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 2,
        tf_gamma: bool | None = None,
    ) -> None:
        import torch

        super().__init__(geometry)
        g = self.geometry
        if g.bin_size != 128 or g.input_len % 128:
            raise GtaInputError(
                f"Enformer needs 128-bp bins and input_len a multiple of 128, got bin_size={g.bin_size}, "
                f"input_len={g.input_len}",
                hint="set geometry: {input_len: 196608, bin_size: 128, output_bins: 896} in the manifest",
            )
        self._weights_file: Path | None = None
        if model is None:
            if weights is None:
                raise GtaInputError(
                    "the enformer encoder needs --weights DIR (a local folder with config.json and "
                    "model.safetensors or pytorch_model.bin); gta never downloads weights"
                )
            model, self._weights_file = load_enformer(weights)
        self.model = model.eval()
        self.weights = str(weights) if weights is not None else None
        if not embeddings and cage_track is None:
            raise GtaInputError("enformer with embeddings=False needs a cage_track to output")
        self.head, self.cage_track, self.embeddings = head, cage_track, bool(embeddings)
        if cage_track is not None:
            n_tracks = self.model.output_heads.get(head)
            if n_tracks is None or not 0 <= cage_track < n_tracks:
                raise GtaInputError(f"Enformer head {head!r} has no track {cage_track} (it has {n_tracks})")
        self.rc_average = bool(rc_average)
        self.batch_size = max(int(batch_size), 1)
        cuda = torch.cuda.is_available()
        self.device = choose_device(device, cuda, os.environ, torch.cuda.device_count() if cuda else 1)
        if precision == "auto":
            if str(self.device).startswith("cuda"):
                with torch.cuda.device(self.device):  # the chosen GPU's support, not cuda:0's
                    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                precision = "bf16"
        if precision not in ("bf16", "fp16", "fp32"):
            raise GtaInputError(f"unknown precision {precision!r}", hint="bf16, fp16 or fp32")
        self.precision = precision
        self.tf_gamma = g.input_bins == 1536 if tf_gamma is None else bool(tf_gamma)
        from enformer_pytorch.modeling_enformer import Attention

        for mod in self.model.modules():
            if isinstance(mod, Attention):
                mod.use_tf_gamma = self.tf_gamma
        self.model.to(self.device)
        self._hash: str | None = None

    @property
    def config(self) -> dict[str, Any]:
        cfg = self.model.config
        return {
            "dim": int(cfg.dim),
            "depth": int(cfg.depth),
            "heads": int(cfg.heads),
            "head": self.head,
            "cage_track": self.cage_track,
            "embeddings": self.embeddings,
            "rc_average": self.rc_average,
            "precision": self.precision,
            "tf_gamma": self.tf_gamma,
        }

    @property
    def feature_names(self) -> list[str]:
        names = [f"emb{i}" for i in range(2 * int(self.model.config.dim))] if self.embeddings else []
        return names + ([f"{self.head}_track{self.cage_track}"] if self.cage_track is not None else [])

    @property
    def receptive_field_bp(self) -> None:
        return None

    def weights_hash(self) -> str:
        if self._hash is None:
            if self._weights_file is not None:
                self._hash = sha256_files([self._weights_file.parent / "config.json", self._weights_file])[:16]
            else:
                import torch

                self._hash = sha256_state_dict(self.model.state_dict(), dtype=torch.float32)[:16]
        return self._hash

    def _forward(self, x):  # x: [B, L, 4] float one-hot
        import torch

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[self.precision]
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        with torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype is not None):
            emb = self.model(x, return_only_embeddings=True, target_length=self.geometry.output_bins)
            parts = [emb.float()] if self.embeddings else []
            if self.cage_track is not None:
                with torch.autocast(device_type=device_type, enabled=False):  # fp32 island at the output
                    track = self.model.heads[self.head](emb.float())[..., self.cage_track : self.cage_track + 1]
                parts.append(track)
        return torch.cat(parts, dim=-1)

    def encode(self, seqs: Sequence[str]) -> np.ndarray:
        """float32 [B, output_bins, d]."""
        import torch

        from gta.io.genome import one_hot

        self.check_seqs(seqs)
        out = np.zeros((len(seqs), self.geometry.output_bins, self.n_features), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(seqs), self.batch_size):
                batch = seqs[s : s + self.batch_size]
                x = torch.from_numpy(np.stack([one_hot(q) for q in batch])).to(self.device)
                y = self._forward(x)
                if self.rc_average:  # reverse complement = flip length and the ACGT axis; flip bins back
                    y = (y + self._forward(x.flip(1).flip(2)).flip(1)) / 2
                out[s : s + len(batch)] = y.cpu().numpy()
        return out
