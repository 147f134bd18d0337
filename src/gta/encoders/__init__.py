"""Sequence encoders: window sequences -> per-bin features ``[B, output_bins, d]``.

``get_encoder(name, geometry=..., **options)`` builds a registered encoder; ``list_encoders()`` names them.
Built in: ``motif`` (JASPAR PWM scans, no weights) and ``enformer`` (enformer-pytorch trunk from a local folder).
"""

from gta.encoders import enformer as _enformer  # noqa: F401  (registers "enformer"; torch is imported lazily)
from gta.encoders import motif as _motif  # noqa: F401  (registers "motif")
from gta.encoders.base import BaseEncoder, Encoder, get_encoder, hash_json, list_encoders, register_encoder
from gta.encoders.enformer import GM12878_CAGE_TRACK, EnformerEncoder, load_enformer, save_enformer
from gta.encoders.motif import MotifEncoder

__all__ = [
    "GM12878_CAGE_TRACK",
    "BaseEncoder",
    "Encoder",
    "EnformerEncoder",
    "MotifEncoder",
    "get_encoder",
    "hash_json",
    "list_encoders",
    "load_enformer",
    "register_encoder",
    "save_enformer",
]
