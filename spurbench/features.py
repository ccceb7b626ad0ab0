"""One backbone pass per image, cached as safetensors shards and resumable.

Images are processed in a fixed order in shards of ``shard_size`` images (a multiple of the batch
size, so a resumed run forms exactly the same batches and gives bit-identical features). Each finished
shard is written atomically; a killed run keeps its finished shards and continues from the first
missing one. The cache key hashes everything that changes the features.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import Benchmark, BenchmarkImage
from spurbench.cache import cache_dir, stable_hash
from spurbench.preprocessing import build_transform

CACHE_FORMAT = 1


@dataclass
class FeatureSet:
    image_ids: list[str]
    features: torch.Tensor  # [N, D] float32, in benchmark image order
    computed_at: str  # when extraction of these features started (ISO 8601, UTC)
    images_forwarded: int  # images that went through the backbone in this call (0 = all from cache)
    cache_path: Path | None


class _ImageDataset(Dataset):
    def __init__(self, images: Sequence[BenchmarkImage], transforms: dict[str, Callable]):
        self.images = images
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return self.transforms[image.role](image.open())


def feature_cache_key(adapter: ModelAdapter, benchmark: Benchmark, protocol: str, shard_size: int) -> dict:
    """Everything that changes the cached features; hashed into the cache folder name."""
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
        "protocol": protocol,
        "shard_size": shard_size,
        "dtype": "float32",
    }


def _default_workers() -> int:
    # Decoding overlaps with the forward pass; one worker per spare core is enough on small machines.
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _worker_context() -> str | None:
    # Image loaders are closures, which only fork can hand to workers without pickling.
    return "fork" if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods() else None


def _write_shard(folder: Path, index: int, ids: list[str], feats: torch.Tensor) -> None:
    tmp = folder / f".shard-{index:05d}.tmp"
    save_file({"features": feats.contiguous()}, str(tmp), metadata={"image_ids": json.dumps(ids)})
    os.replace(tmp, folder / f"shard-{index:05d}.safetensors")


def _read_shard(folder: Path, index: int, expected_ids: list[str]) -> torch.Tensor | None:
    path = folder / f"shard-{index:05d}.safetensors"
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            ids = json.loads(handle.metadata()["image_ids"])
        if ids != expected_ids:
            return None
        return load_file(str(path))["features"]
    except Exception:  # a damaged shard is recomputed, never trusted
        return None


@torch.no_grad()
def extract_features(
    adapter: ModelAdapter,
    benchmark: Benchmark,
    *,
    protocol: str = "paper",
    batch_size: int = 64,
    device: str = "cpu",
    use_cache: bool = True,
    num_workers: int | None = None,
    shard_batches: int = 8,
    progress: bool = True,
) -> FeatureSet:
    """Penultimate features of every benchmark image, from cache where possible."""
    images = benchmark.images
    shard_size = batch_size * shard_batches
    n_shards = (len(images) + shard_size - 1) // shard_size
    transforms = {
        role: build_transform(adapter.data_config, protocol, role, benchmark.positive_crop_pct)
        for role in ("positive", "negative")
    }
    shard_ids = [[im.image_id for im in images[i * shard_size : (i + 1) * shard_size]] for i in range(n_shards)]

    folder: Path | None = None
    computed_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    if use_cache:
        key = feature_cache_key(adapter, benchmark, protocol, shard_size)
        folder = cache_dir("features", f"{benchmark.name}-{stable_hash(key)}")
        manifest = folder / "manifest.json"
        if manifest.exists():
            stored = json.loads(manifest.read_text())
            if stored.get("key") == json.loads(json.dumps(key, default=str)):
                computed_at = stored["computed_at"]
            else:  # hash collision or format change: start over
                shutil.rmtree(folder)
                folder.mkdir(parents=True)
        if not manifest.exists():
            tmp = folder / ".manifest.tmp"
            tmp.write_text(json.dumps({"key": key, "computed_at": computed_at}, default=str, indent=1))
            os.replace(tmp, manifest)

    shards: list[torch.Tensor | None] = [
        _read_shard(folder, i, shard_ids[i]) if folder is not None else None for i in range(n_shards)
    ]
    missing = [i for i, s in enumerate(shards) if s is None]
    todo = [j for i in missing for j in range(i * shard_size, min((i + 1) * shard_size, len(images)))]

    if todo:
        adapter.to(device)
        workers = _default_workers() if num_workers is None else num_workers
        context = _worker_context()
        loader = DataLoader(
            _ImageDataset([images[j] for j in todo], transforms),
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers if context else 0,
            multiprocessing_context=context if workers and context else None,
        )
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("[bold]features[/] " + adapter.name),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            disable=not progress,
            transient=True,
        )
        pending: list[torch.Tensor] = []
        shard_iter = iter(missing)
        current = next(shard_iter)
        with bar:
            task = bar.add_task("features", total=len(todo))
            for batch in loader:
                pending.append(adapter.features(batch.to(device)).float().cpu())
                bar.advance(task, batch.shape[0])
                done = sum(p.shape[0] for p in pending)
                if done == len(shard_ids[current]):
                    feats = torch.cat(pending)
                    pending = []
                    shards[current] = feats
                    if folder is not None:
                        _write_shard(folder, current, shard_ids[current], feats)
                    current = next(shard_iter, None)
    ids = [i for s in shard_ids for i in s]
    features = torch.cat([s for s in shards]) if shards else torch.zeros(0, 0)
    return FeatureSet(ids, features, computed_at, len(todo), folder)
