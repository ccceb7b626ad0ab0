"""One backbone pass per image, cached as safetensors shards and resumable.

Images are processed in a fixed order in shards of ``settings.shard_size`` images (a multiple of the
batch size, so a resumed run forms exactly the same batches and gives bit-identical features). Each
finished shard is written atomically; a killed run keeps its finished shards and continues from the
first missing one. The cache key hashes everything that changes the features.

Data path (``spurbench.dataloading``): loader workers decode to uint8 pixels (or read them from a
pixel cache), batches are copied to the device (pinned, non-blocking on CUDA) and normalised there;
the backbone runs under ``precision`` (autocast to bf16 / fp16, its output cast back to float32) and
optionally in channels-last memory format. Features are float32 whatever the precision.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file

from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import VIEW_SEPARATOR, Benchmark, BenchmarkImage
from spurbench.cache import make_cache_dir
from spurbench.dataloading import input_batches
from spurbench.errors import DataError
from spurbench.features.shards import feature_cache_key, read_manifest, shard_path, shard_state, write_manifest, write_shard
from spurbench.files import stable_hash
from spurbench.pixelcache import PixelCache
from spurbench.preprocessing import eval_data_config, normalize_on_device
from spurbench.runtime import StageProgress, autocast, bound_heap_growth, confine_torch_threads, default_workers, note
from spurbench.settings import FeatureSettings


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


class FeatureStream:
    """Features of a benchmark's images, shard by shard in image order: cached shards are read, missing
    ones computed (and cached). Iterating holds one shard in memory, so statistics over the stream
    (neural PCA, matched directions) use memory independent of the number of images.

    Build it with :meth:`open`, which lays out the shards, opens the pixel cache and checks the feature
    cache (an explicit step: it reads every cached shard once to verify its digest); the constructor
    only stores its arguments.

    A views benchmark (``Benchmark.render_views``) gives one row per (image, view), ids
    ``<image id>::<view>``; a shard holds the rows of ``shard_size`` images, each image decoded once.
    """

    def __init__(self, adapter: ModelAdapter, benchmark: Benchmark, settings: FeatureSettings):
        self.adapter, self.benchmark, self.settings = adapter, benchmark, settings
        self.pixel_cache: PixelCache | None = None
        self.shard_ids: list[list[str]] = []  # the row ids of each shard
        self.folder: Path | None = None  # the cache entry (None: not cached)
        self.computed_at = ""
        self.devices: list[str] = []
        self.missing: list[int] = []  # shards to compute
        self.images_forwarded = 0

    @classmethod
    def open(cls, adapter: ModelAdapter, benchmark: Benchmark, settings: FeatureSettings) -> FeatureStream:
        """A stream whose machine, pixel cache and feature-cache entry have been checked (one line if
        this machine lacks the device or precision, or the pixel cache folder is unusable)."""
        settings.check_machine()
        stream = cls(adapter, benchmark, settings)
        size, images = settings.shard_size, benchmark.images
        count = (len(images) + size - 1) // size
        stream.shard_ids = [[rid for im in images[i * size : (i + 1) * size] for rid in row_ids(benchmark, im)] for i in range(count)]
        stream.computed_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        stream.missing = list(range(count))
        stream.images_forwarded = sum(len(ids) for ids in stream.shard_ids)
        if settings.pixel_cache is not None:
            stream.pixel_cache = PixelCache.open(settings.pixel_cache, settings.pixel_cache_gb)
        if settings.use_cache:
            stream.check_cache()
        return stream

    def check_cache(self) -> None:
        """Find which shards the cache holds intact; anything else is recomputed (with a note why)."""
        settings = self.settings
        key = feature_cache_key(self.adapter, self.benchmark, settings.protocol, settings.shard_size, settings.precision)
        self.folder = folder = make_cache_dir("features", f"{self.benchmark.name}-{stable_hash(key)}")
        self._manifest = folder / "manifest.json"
        stored = read_manifest(self._manifest) if self._manifest.exists() else None
        if stored is not None and stored.get("key") == json.loads(json.dumps(key, default=str)):
            self.computed_at, self.devices = stored["computed_at"], list(stored.get("devices", []))
        elif self._manifest.exists() or any(folder.iterdir()):
            # an unreadable manifest, a hash collision or an older cache format: start the entry over
            note(f"feature cache {folder.name}: manifest unreadable or from another configuration; recomputing")
            shutil.rmtree(folder)
            folder.mkdir(parents=True)
        self._key = key
        write_manifest(self._manifest, key, self.computed_at, self.devices)
        width = int(self.adapter.head[0].shape[1])
        self.missing = []
        for i, ids in enumerate(self.shard_ids):
            state = shard_state(folder, i, ids, width)
            if state != "ok":
                self.missing.append(i)
                if state != "missing":
                    note(f"feature cache {folder.name}: shard {i} {state}; recomputing it")
        self.images_forwarded = sum(len(self.shard_ids[i]) for i in self.missing)

    def _computed(self) -> Iterator[tuple[int, torch.Tensor]]:
        """Compute the missing shards in order: one DataLoader over all their images, cut at shard ends."""
        bound_heap_growth()
        settings, size = self.settings, self.settings.shard_size
        device, batch_size = settings.device, settings.batch_size
        images = self.benchmark.images
        todo = [j for i in self.missing for j in range(i * size, min((i + 1) * size, len(images)))]
        self.adapter.to(device)
        if settings.channels_last:
            self.adapter.set_memory_format(torch.channels_last)
        views = self.benchmark.render_views
        data_config = self.adapter.data_config
        config = eval_data_config(data_config, self.benchmark.protocols[settings.protocol])  # the protocol's mean/std, for the device step
        cuda = torch.device(device).type == "cuda"
        workers = default_workers() if settings.num_workers is None else settings.num_workers
        confine_torch_threads()  # the forward's threads, sized (as the workers are) from the cores this process was given
        loader = input_batches(
            self.benchmark, todo, data_config, settings.protocol, batch_size, workers=workers, pin_memory=cuda, pixel_cache=self.pixel_cache
        )
        # (a pool that mine streams through here gets the same lines)
        bar = StageProgress(f"features {self.adapter.name} on {self.benchmark.name}", len(todo), "images", enabled=settings.progress)
        shards = iter(self.missing)
        current: int | None = next(shards)
        feats: torch.Tensor | None = None  # the current shard, filled batch by batch
        filled = 0
        if device not in self.devices:
            self.devices.append(device)
            if self.folder is not None:
                write_manifest(self._manifest, self._key, self.computed_at, self.devices)
        with bar, torch.no_grad():
            done = 0
            for batch in loader:
                assert current is not None  # the loader ends with the last missing shard
                images_in_batch = batch.shape[0] if views is None else min(batch_size, len(todo) - done)  # (the loader batches images)
                done += images_in_batch
                x = batch.to(device, non_blocking=cuda)  # pinned on CUDA: the copy overlaps
                x = x if views is not None else normalize_on_device(x, config)  # uint8 -> the model's float input, on the device
                # a views batch holds several rows per image: forward at most batch_size rows at a time
                out = torch.cat([self._forward(part) for part in x.split(batch_size)])
                if not torch.isfinite(out).all():
                    row = int((~torch.isfinite(out)).any(dim=1).nonzero()[0])
                    bad = self.shard_ids[current][filled + row]
                    origin = images[current * size + filled + row].origin if views is None else bad
                    hint = (
                        f" (under --precision {settings.precision}: fp16 overflows where bf16 or fp32 may not)"
                        if settings.precision == "fp16"
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
                        write_shard(self.folder, current, self.shard_ids[current], feats)
                    yield current, feats
                    feats, filled = None, 0
                    current = next(shards, None)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's features of one device batch, as float32 on the CPU."""
        if self.settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.settings.precision, self.settings.device):
            return self.adapter.features(x).float().cpu()

    def __iter__(self) -> Iterator[tuple[list[str], torch.Tensor]]:
        computed = self._computed() if self.missing else iter(())
        missing = set(self.missing)
        for index, ids in enumerate(self.shard_ids):
            if index in missing:
                got, feats = next(computed)
                assert got == index  # shards are produced in order
            else:
                assert self.folder is not None  # a shard not to compute is a cached one
                feats = load_file(str(shard_path(self.folder, index)))["features"]
            yield ids, feats
        next(computed, None)  # run the computation to its end, so that its progress closes (and says "done")


def extract_features(adapter: ModelAdapter, benchmark: Benchmark, settings: FeatureSettings) -> FeatureSet:
    """Penultimate features of every benchmark image, from cache where possible (see ``FeatureStream``)."""
    stream = FeatureStream.open(adapter, benchmark, settings)
    ids: list[str] = []
    parts: list[torch.Tensor] = []
    for shard_ids, feats in stream:
        ids += shard_ids
        parts.append(feats)
    features = torch.cat(parts) if parts else torch.zeros(0, 0)
    return FeatureSet(ids, features, stream.computed_at, stream.images_forwarded, stream.folder, list(stream.devices))


__all__ = ["FeatureSet", "FeatureStream", "extract_features", "row_ids"]
