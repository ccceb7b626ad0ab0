"""One backbone pass per image, cached as safetensors shards and resumable.

Images are processed in a fixed order in shards of ``shard_size`` images (a multiple of the batch
size, so a resumed run forms exactly the same batches and gives bit-identical features). Each finished
shard is written atomically; a killed run keeps its finished shards and continues from the first
missing one. The cache key hashes everything that changes the features.

Data path (``spurbench.dataloading``): loader workers decode to uint8 pixels (or read them from a
pixel cache), batches are copied to the device (pinned, non-blocking on CUDA) and normalised there;
the backbone runs under ``precision`` (autocast to bf16 / fp16, its output cast back to float32) and
optionally in channels-last memory format. Features are float32 whatever the precision.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import VIEW_SEPARATOR, Benchmark, BenchmarkImage
from spurbench.cache import make_cache_dir
from spurbench.dataloading import input_batches
from spurbench.errors import DataError
from spurbench.files import atomic_path, stable_hash
from spurbench.pixelcache import DEFAULT_GB, PixelCache
from spurbench.preprocessing import eval_data_config, normalize_on_device
from spurbench.runtime import StageProgress, autocast, bound_heap_growth, check_precision, check_workers, default_workers, note

CACHE_FORMAT = 2  # 2: every shard carries a sha256 of its feature bytes, checked before use


@dataclass
class FeatureSet:
    image_ids: list[str]
    features: torch.Tensor  # [N, D] float32, in benchmark image order
    computed_at: str  # when extraction of these features started (ISO 8601, UTC)
    images_forwarded: int  # rows that went through the backbone in this call (images; a views benchmark's views); 0 = all from cache
    cache_path: Path | None
    devices: list[str]  # the devices whose forward passes produced these features (from the cache manifest)


def row_ids(benchmark: Benchmark, image: BenchmarkImage) -> list[str]:
    """The feature rows of one image: its id, or for a views benchmark ``<id>::<view>`` per view."""
    if benchmark.render_views is None:
        return [image.image_id]
    return [f"{image.image_id}{VIEW_SEPARATOR}{view}" for view in image.views]


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


def _tensor_digest(feats: torch.Tensor) -> str:
    return hashlib.sha256(feats.contiguous().numpy().tobytes()).hexdigest()


def _write_shard(folder: Path, index: int, ids: list[str], feats: torch.Tensor) -> None:
    feats = feats.contiguous()
    with atomic_path(folder / f"shard-{index:05d}.safetensors") as tmp:
        save_file({"features": feats}, str(tmp), metadata={"image_ids": json.dumps(ids), "sha256": _tensor_digest(feats)})


def _shard_state(folder: Path, index: int, expected_ids: list[str], width: int) -> str:
    """'ok', 'missing', or why a cached shard cannot be trusted. A shard counts only if it lists exactly
    the expected images, has one float32 row of the model's feature width per image, and its data
    bytes match the sha256 recorded when it was written (a flipped bit is caught, not scored)."""
    path = folder / f"shard-{index:05d}.safetensors"
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


def _read_manifest(path: Path) -> dict | None:
    try:
        stored = json.loads(path.read_text())
        return stored if isinstance(stored, dict) and isinstance(stored.get("computed_at"), str) else None
    except (OSError, ValueError):
        return None


class FeatureStream:
    """Features of a benchmark's images, shard by shard in image order: cached shards are read, missing
    ones computed (and cached). Iterating holds one shard in memory, so statistics over the stream
    (neural PCA, matched directions) use memory independent of the number of images.

    Build it with :meth:`open`, which checks the cache (an explicit step: it reads every cached shard
    once to verify its digest); the constructor only stores its arguments.

    A views benchmark (``Benchmark.render_views``) gives one row per (image, view), ids
    ``<image id>::<view>``; a shard holds the rows of ``shard_size`` images, each image decoded once.
    """

    def __init__(
        self,
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
        precision: str = "fp32",
        channels_last: bool = False,
        pixel_cache: PixelCache | str | Path | None = None,
        pixel_cache_gb: float = DEFAULT_GB,
    ):
        self.adapter, self.benchmark, self.protocol, self.use_cache = adapter, benchmark, protocol, use_cache
        self.batch_size, self.device, self.num_workers, self.progress = batch_size, device, num_workers, progress
        self.precision, self.channels_last = precision, channels_last
        self.pixel_cache, self.pixel_cache_gb = pixel_cache, pixel_cache_gb
        self.shard_size = batch_size * shard_batches
        images = benchmark.images
        n_shards = (len(images) + self.shard_size - 1) // self.shard_size
        self.shard_ids = [
            [rid for im in images[i * self.shard_size : (i + 1) * self.shard_size] for rid in row_ids(benchmark, im)]
            for i in range(n_shards)
        ]
        self.folder: Path | None = None
        self.computed_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        self.devices: list[str] = []
        self.missing: list[int] = list(range(n_shards))
        self.images_forwarded = sum(len(ids) for ids in self.shard_ids)

    @classmethod
    def open(cls, adapter: ModelAdapter, benchmark: Benchmark, **kwargs: Any) -> FeatureStream:
        """A stream whose options and cache entry have been checked (see :meth:`check_cache`); ``kwargs``
        as the constructor's (``pixel_cache``: a folder is opened here, see ``PixelCache.open``)."""
        stream = cls(adapter, benchmark, **kwargs)
        check_precision(stream.precision, stream.device)
        check_workers(stream.num_workers)
        if stream.pixel_cache is not None and not isinstance(stream.pixel_cache, PixelCache):
            stream.pixel_cache = PixelCache.open(stream.pixel_cache, stream.pixel_cache_gb)
        if stream.use_cache:
            stream.check_cache()
        return stream

    def check_cache(self) -> None:
        """Find which shards the cache holds intact; anything else is recomputed (with a note why)."""
        key = feature_cache_key(self.adapter, self.benchmark, self.protocol, self.shard_size, self.precision)
        self.folder = folder = make_cache_dir("features", f"{self.benchmark.name}-{stable_hash(key)}")
        self._manifest = folder / "manifest.json"
        stored = _read_manifest(self._manifest) if self._manifest.exists() else None
        if stored is not None and stored.get("key") == json.loads(json.dumps(key, default=str)):
            self.computed_at, self.devices = stored["computed_at"], list(stored.get("devices", []))
        elif self._manifest.exists() or any(folder.iterdir()):
            # an unreadable manifest, a hash collision or an older cache format: start the entry over
            note(f"feature cache {folder.name}: manifest unreadable or from another configuration; recomputing")
            shutil.rmtree(folder)
            folder.mkdir(parents=True)
        self._key = key
        self._write_manifest()
        width = int(self.adapter.head[0].shape[1])
        self.missing = []
        for i, ids in enumerate(self.shard_ids):
            state = _shard_state(folder, i, ids, width)
            if state != "ok":
                self.missing.append(i)
                if state != "missing":
                    note(f"feature cache {folder.name}: shard {i} {state}; recomputing it")
        self.images_forwarded = sum(len(self.shard_ids[i]) for i in self.missing)

    def _write_manifest(self) -> None:
        with atomic_path(self._manifest) as tmp:
            tmp.write_text(json.dumps({"key": self._key, "computed_at": self.computed_at, "devices": self.devices}, default=str, indent=1))

    def _computed(self) -> Iterator[tuple[int, torch.Tensor]]:
        """Compute the missing shards in order: one DataLoader over all their images, cut at shard ends."""
        bound_heap_growth()
        images = self.benchmark.images
        todo = [j for i in self.missing for j in range(i * self.shard_size, min((i + 1) * self.shard_size, len(images)))]
        self.adapter.to(self.device)
        if self.channels_last:
            self.adapter.set_memory_format(torch.channels_last)
        views = self.benchmark.render_views
        data_config = self.adapter.data_config
        config = eval_data_config(data_config, self.benchmark.protocols[self.protocol])  # the protocol's mean/std, for the device step
        cuda = torch.device(self.device).type == "cuda"
        workers, pixels = (
            default_workers() if self.num_workers is None else self.num_workers,
            self.pixel_cache if isinstance(self.pixel_cache, PixelCache) else None,
        )
        loader = input_batches(
            self.benchmark, todo, data_config, self.protocol, self.batch_size, workers=workers, pin_memory=cuda, pixel_cache=pixels
        )
        # (a pool that mine streams through here gets the same lines)
        bar = StageProgress(f"features {self.adapter.name} on {self.benchmark.name}", len(todo), "images", enabled=self.progress)
        shards = iter(self.missing)
        current = next(shards)
        feats: torch.Tensor | None = None  # the current shard, filled batch by batch
        filled = 0
        if self.device not in self.devices:
            self.devices.append(self.device)
            if self.folder is not None:
                self._write_manifest()
        with bar, torch.no_grad():
            done = 0
            for batch in loader:
                images_in_batch = batch.shape[0] if views is None else min(self.batch_size, len(todo) - done)  # (the loader batches images)
                done += images_in_batch
                x = batch.to(self.device, non_blocking=cuda)  # pinned on CUDA: the copy overlaps
                x = x if views is not None else normalize_on_device(x, config)  # uint8 -> the model's float input, on the device
                # a views batch holds several rows per image: forward at most batch_size rows at a time
                out = torch.cat([self._forward(part) for part in x.split(self.batch_size)])
                if not torch.isfinite(out).all():
                    row = int((~torch.isfinite(out)).any(dim=1).nonzero()[0])
                    bad = self.shard_ids[current][filled + row]
                    origin = images[current * self.shard_size + filled + row].origin if views is None else bad
                    hint = (
                        f" (under --precision {self.precision}: fp16 overflows where bf16 or fp32 may not)"
                        if self.precision == "fp16"
                        else ""
                    )
                    raise DataError(
                        f"{self.adapter.name} produced non-finite features (NaN or inf) for image {origin}; check its weights{hint}"
                    )
                if feats is None:
                    # One buffer per shard, filled in place: collecting per-batch tensors and
                    # concatenating them fragmented glibc's heap so that resident memory grew with
                    # the image count (measured by perf/p4_streaming_memory.py).
                    feats = torch.empty(len(self.shard_ids[current]), out.shape[1], dtype=torch.float32)
                feats[filled : filled + out.shape[0]] = out
                filled += out.shape[0]
                bar.advance(images_in_batch)
                del out, batch
                if filled == feats.shape[0]:
                    if self.folder is not None:
                        _write_shard(self.folder, current, self.shard_ids[current], feats)
                    yield current, feats
                    feats, filled = None, 0
                    current = next(shards, None)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's features of one device batch, as float32 on the CPU."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            return self.adapter.features(x).float().cpu()

    def __iter__(self) -> Iterator[tuple[list[str], torch.Tensor]]:
        computed = self._computed() if self.missing else iter(())
        missing = set(self.missing)
        for index, ids in enumerate(self.shard_ids):
            if index in missing:
                got, feats = next(computed)
                assert got == index  # shards are produced in order
            else:
                feats = load_file(str(self.folder / f"shard-{index:05d}.safetensors"))["features"]
            yield ids, feats
        next(computed, None)  # run the computation to its end, so that its progress closes (and says "done")


def extract_features(adapter: ModelAdapter, benchmark: Benchmark, **kwargs) -> FeatureSet:
    """Penultimate features of every benchmark image, from cache where possible (see ``FeatureStream``)."""
    stream = FeatureStream.open(adapter, benchmark, **kwargs)
    ids: list[str] = []
    parts: list[torch.Tensor] = []
    for shard_ids, feats in stream:
        ids += shard_ids
        parts.append(feats)
    features = torch.cat(parts) if parts else torch.zeros(0, 0)
    return FeatureSet(ids, features, stream.computed_at, stream.images_forwarded, stream.folder, list(stream.devices))
