"""The features stage: penultimate features of a benchmark's images through the resumable shard cache
(``stream``, ``shards``), and the per-class and per-rank parts that fits and discovery read (``parts``)."""

from spurbench.features.parts import check_same_inputs, class_subset, rank_part, stream_part
from spurbench.features.shards import CACHE_FORMAT, feature_cache_key
from spurbench.features.stream import FeatureSet, FeatureStream, extract_features, row_ids

__all__ = [
    "CACHE_FORMAT",
    "FeatureSet",
    "FeatureStream",
    "check_same_inputs",
    "class_subset",
    "extract_features",
    "feature_cache_key",
    "rank_part",
    "row_ids",
    "stream_part",
]
