"""The feature cache's store: one folder per cache key, holding a manifest and safetensors shards.

Each shard is written atomically with a sha256 of its feature bytes in its metadata, and a cached
shard counts only if it lists exactly the expected images, has the model's feature width and its
bytes match that digest (a flipped bit is caught, not scored).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import Benchmark
from spurbench.files import atomic_path, stable_hash

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


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.safetensors"


def _tensor_digest(feats: torch.Tensor) -> str:
    return hashlib.sha256(feats.contiguous().numpy().tobytes()).hexdigest()


def write_shard(folder: Path, index: int, ids: list[str], feats: torch.Tensor) -> None:
    feats = feats.contiguous()
    with atomic_path(shard_path(folder, index)) as tmp:
        save_file({"features": feats}, str(tmp), metadata={"image_ids": json.dumps(ids), "sha256": _tensor_digest(feats)})


def shard_state(folder: Path, index: int, expected_ids: list[str], width: int) -> str:
    """'ok', 'missing', or why a cached shard cannot be trusted. A shard counts only if it lists exactly
    the expected images, has one float32 row of the model's feature width per image, and its data
    bytes match the sha256 recorded when it was written (a flipped bit is caught, not scored)."""
    path = shard_path(folder, index)
    if not path.exists():
        return "missing"
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            ids = json.loads(meta["image_ids"])
            feats = handle.get_tensor("features")
    except Exception as exc:  # unreadable header, missing tensor, truncated file, ...
        return f"unreadable ({type(exc).__name__})"
    if ids != expected_ids:
        return "lists other images"
    if feats.dtype != torch.float32 or tuple(feats.shape) != (len(ids), width):
        return f"has shape {tuple(feats.shape)} {feats.dtype}, expected ({len(ids)}, {width}) float32"
    if meta.get("sha256") != _tensor_digest(feats):
        return "damaged (its data does not match its digest)"
    return "ok"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A cache entry's manifest (key, when computed, on which devices), or None if it is unreadable."""
    try:
        stored = json.loads(path.read_text())
        return stored if isinstance(stored, dict) and isinstance(stored.get("computed_at"), str) else None
    except (OSError, ValueError):
        return None


def write_manifest(path: Path, key: dict, computed_at: str, devices: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"key": key, "computed_at": computed_at, "devices": devices}, default=str, indent=1))


__all__ = ["CACHE_FORMAT", "feature_cache_key", "read_manifest", "shard_path", "shard_state", "write_manifest", "write_shard"]
