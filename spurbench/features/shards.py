"""The feature cache's entries in the shard store (``spurbench.shard_store``): one folder per cache key,
holding a manifest and safetensors shards of float32 features (tensor ``features``, one row per image).

What is the feature cache's own: its key (:func:`feature_cache_key`, format ``CACHE_FORMAT``), its
manifest's content (key, when computed, on which devices) and what a shard must hold (the expected
images, one float32 row of the model's feature width each). Writing, digests and checks are the store's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spurbench import shard_store
from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import Benchmark
from spurbench.files import stable_hash
from spurbench.shard_store import shard_path

CACHE_FORMAT = 2  # 2: every shard carries a sha256 of its feature bytes, checked before use


def feature_cache_key(adapter: ModelAdapter, benchmark: Benchmark, protocol: str, shard_size: int, precision: str = "fp32") -> dict:
    """Everything that changes the cached features; hashed into the cache folder name.

    ``precision`` enters only when it is not fp32, so the entries of every earlier (fp32) run stay
    valid. Not in it: the device, the worker count, the pixel cache (the same pixels either way) and
    channels-last (a memory layout: the same arithmetic up to float rounding, like another device)."""
    return {
        "format": CACHE_FORMAT,
        "model": adapter.name,
        "weights_revision": adapter.card.weights_revision,
        "data_config": adapter.data_config,
        "benchmark": benchmark.name,
        "benchmark_revision": benchmark.revision,
        "benchmark_checksum": benchmark.checksum,
        "positives_source": benchmark.positives_source,
        "image_ids": stable_hash([im.image_id for im in benchmark.images], length=32),
        **(
            {"views": stable_hash([im.views for im in benchmark.images], length=32), "views_key": benchmark.views_key}
            if benchmark.render_views is not None
            else {}
        ),
        "protocol": benchmark.protocols[protocol].model_dump(
            mode="json"
        ),  # the whole protocol, not its name: a plugin may change what "paper" does
        "shard_size": shard_size,
        "dtype": "float32",
        **({"precision": precision} if precision != "fp32" else {}),
    }


def write_shard(folder: Path, index: int, ids: list[str], feats: torch.Tensor) -> None:
    shard_store.write_shard(folder, index, "features", ids, feats)


def shard_state(folder: Path, index: int, expected_ids: list[str], width: int) -> str:
    """'ok', 'missing', or why a cached shard cannot be trusted (``shard_store.read_shard``): it counts
    only if it lists exactly the expected images, has one float32 row of the model's feature width per
    image, and its data bytes match the sha256 recorded when it was written."""
    spec = shard_store.ShardSpec("features", expected_ids, torch.float32, (len(expected_ids), width))
    return shard_store.read_shard(folder, index, spec).why


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A cache entry's manifest (key, when computed, on which devices), or None if it is unreadable."""
    stored = shard_store.read_manifest(path)
    return stored if stored is not None and isinstance(stored.get("computed_at"), str) else None


def write_manifest(path: Path, key: dict, computed_at: str, devices: list[str]) -> None:
    shard_store.write_manifest(path, {"key": key, "computed_at": computed_at, "devices": devices})


__all__ = ["CACHE_FORMAT", "feature_cache_key", "read_manifest", "shard_path", "shard_state", "write_manifest", "write_shard"]
