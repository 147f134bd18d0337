"""The ``Encoder`` protocol and the encoder registry.

An encoder turns window sequences (upper-case ACGTN strings of ``geometry.input_len``) into per-bin features of
the geometry's central ``output_bins`` bins: ``encode(seqs) -> float32 [B, output_bins, d]``.

``receptive_field_bp`` separates the two kinds the feature store cares about:

- *local* encoders (an int, e.g. the motif scanner: the widest motif) change only the bins within that many bp of
  an edited base, so personal haplotypes are recomputed and stored as sparse deltas (``encode_region``);
- *global* encoders (``None``, e.g. Enformer) change everywhere, and personal haplotypes are stored in full.

Adding an encoder (Borzoi, a DNA language model, ...) needs nothing outside its own module::

    from gta.encoders import BaseEncoder, register_encoder

    @register_encoder("borzoi")
    class BorzoiEncoder(BaseEncoder):
        ...

Third-party packages can also expose encoders through the ``gta.encoders`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gta.errors import GtaInputError
from gta.geometry import Geometry
from gta.hashing import sha256_json


@runtime_checkable
class Encoder(Protocol):
    """What ``gta.features.extract`` needs from an encoder."""

    name: str
    geometry: Geometry

    @property
    def config(self) -> dict[str, Any]: ...  # JSON-safe; stored in the feature store and compared on reuse

    @property
    def n_features(self) -> int: ...

    @property
    def feature_names(self) -> list[str]: ...

    @property
    def receptive_field_bp(self) -> int | None: ...  # None = global

    def weights_hash(self) -> str: ...

    def encode(self, seqs: Sequence[str]) -> np.ndarray: ...  # float32 [B, output_bins, d]


class BaseEncoder:
    """Shared checks and the generic sparse-recompute path; subclasses implement ``encode``."""

    name: str = "base"

    def __init__(self, geometry: Geometry | None = None) -> None:
        self.geometry = geometry or Geometry()

    # -- to override ---------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return {}

    @property
    def feature_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def receptive_field_bp(self) -> int | None:
        return None

    def weights_hash(self) -> str:
        return hash_json(self.config)

    def encode(self, seqs: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def encode_bins(self, seq: str, bins: np.ndarray) -> np.ndarray:
        """Features of the given output bins only, [len(bins), d]; local encoders override this."""
        return self.encode([seq])[0][bins]

    # -- shared --------------------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self.receptive_field_bp is not None

    def check_seqs(self, seqs: Sequence[str]) -> None:
        n = self.geometry.input_len
        for i, s in enumerate(seqs):
            if len(s) != n:
                raise GtaInputError(
                    f"encoder {self.name!r}: sequence {i} has length {len(s)}, the geometry needs input_len = {n}",
                    hint="build windows with the same geometry as the encoder",
                )

    def reach_bins(self, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Output bins whose features can change when window positions in ``spans`` ([lo, hi)) change."""
        g = self.geometry
        if not spans:
            return np.zeros(0, dtype=np.int64)
        if self.receptive_field_bp is None:
            return np.arange(g.output_bins)
        r = int(self.receptive_field_bp)
        hit = np.zeros(g.output_bins, dtype=bool)
        for lo, hi in spans:
            if hi <= lo:
                continue
            a = max((lo - r) // g.bin_size - g.crop_bins, 0)
            b = min((hi - 1 + r) // g.bin_size - g.crop_bins, g.output_bins - 1)
            if b >= a:
                hit[a : b + 1] = True
        return np.flatnonzero(hit)

    def encode_region(self, seq: str, ref: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Features of ``seq`` given the reference features ``ref`` [bins, d] and the window spans where ``seq``
        differs from the reference: only bins within the receptive field of a change are recomputed."""
        if not self.is_local:
            return self.encode([seq])[0]
        self.check_seqs([seq])
        out = np.array(ref, dtype=np.float32, copy=True)
        bins = self.reach_bins(spans)
        if len(bins):
            out[bins] = self.encode_bins(seq, bins)
        return out


def hash_json(obj: Any) -> str:
    """Short stable hash of a JSON-safe object."""
    return sha256_json(obj)[:16]


# -- registry ------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[..., Encoder]] = {}


def register_encoder(name: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Class decorator: make an encoder available as ``get_encoder(name, ...)`` and ``--encoder name``."""

    def wrap(cls: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _REGISTRY[name] = cls
        if isinstance(cls, type) and "name" not in cls.__dict__:
            cls.name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def _load_plugins() -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="gta.encoders"):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def list_encoders() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def get_encoder(name: str, **kwargs: Any) -> Encoder:
    """An encoder instance by registered name; unknown names list the valid ones."""
    if name not in _REGISTRY:
        _load_plugins()
    if name not in _REGISTRY:
        raise GtaInputError(
            f"unknown encoder {name!r}", hint=f"valid encoders: {', '.join(sorted(_REGISTRY)) or 'none'}"
        )
    return _REGISTRY[name](**kwargs)
