"""Feature store (zarr) and resumable, sharded extraction; encoder-agnostic."""

from gta.features.extract import ExtractSummary, extract
from gta.features.store import FeatureStore

__all__ = ["ExtractSummary", "FeatureStore", "extract"]
