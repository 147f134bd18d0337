"""The encoder that made a feature store, rebuilt from the store's attributes (name, config, geometry, weights hash):
what variant scoring and eQTL supervision need to encode an allele's window the way the store's windows were."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from gta.errors import GtaInputError
from gta.geometry import Geometry


def _motif_orders(config: dict[str, Any], feature_names: list[str] | None) -> list[dict[str, Any]]:
    """Candidate motif orders: the stored JSON sorts the motif dict, which loses the feature order, so try the
    store's feature names, the stored order and the default set's order."""
    motifs = config.get("motifs")
    if not isinstance(motifs, dict):
        return [config]
    from gta.io.jaspar import DEFAULT_MOTIFS

    orders = []
    if feature_names:
        orders.append([n.removesuffix(".max") for n in feature_names if n.endswith(".max")])
    orders.append(list(motifs))
    orders.append([k for k in DEFAULT_MOTIFS if k in motifs] + [k for k in motifs if k not in DEFAULT_MOTIFS])
    out = []
    for order in orders:
        if sorted(order) == sorted(motifs):
            out.append({**config, "motifs": {k: motifs[k] for k in order}})
    return out or [config]


def rebuild_encoder(attrs: dict[str, Any], weights: str | Path | None = None):
    """The encoder that made a feature store, rebuilt from its attributes (encoder name + config + geometry); its
    weights hash must equal the stored one. Enformer needs the weights folder (``weights``)."""
    from gta.encoders import base as encoder_base
    from gta.encoders import get_encoder

    name = attrs.get("encoder")
    if not name:
        raise GtaInputError("the run records no encoder for its features", hint="retrain with a current gta")
    config = dict(attrs.get("encoder_config") or {})
    cls = getattr(encoder_base, "_REGISTRY", {}).get(name)
    if cls is not None:
        accepted = set(inspect.signature(cls).parameters)
        config = {k: v for k, v in config.items() if k in accepted}
    if weights is not None:
        config["weights"] = weights
    geometry = Geometry.from_dict(attrs.get("geometry"))
    want = attrs.get("weights_hash")
    enc = None
    for candidate in _motif_orders(config, attrs.get("feature_names")):
        enc = get_encoder(name, geometry=geometry, **candidate)
        if not want or enc.weights_hash() == want:
            return enc
    raise GtaInputError(f"the rebuilt {name} encoder (weights hash {enc.weights_hash()}) is not the one that "
                        f"made the run's features ({want})",
                        hint="pass the same --weights (and motif set) as gta extract used")
