"""Per-class and per-rank parts of a training benchmark, streamed through the feature cache: what
``spufix fit`` and ``discover`` read one class at a time.

Under torchrun (``spurbench.distributed``) each rank streams a contiguous part of a class cut at the
stream's batch boundaries, so every batch it forms is a batch the single process forms and its
features are bit-identical to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from spurbench import distributed
from spurbench.adapters.base import ModelAdapter
from spurbench.benchmarks.base import Benchmark
from spurbench.errors import DataError
from spurbench.features.stream import FeatureStream
from spurbench.settings import FeatureSettings


def class_subset(train: Benchmark, class_index: int) -> Benchmark:
    """The training images of one class, as a benchmark of its own (its own feature-cache entry)."""
    images = [im for im in train.images if im.class_index == class_index]
    if len(images) < 2:
        raise DataError(f"training data has {len(images)} image(s) of class {class_index}; neural PCA needs at least 2")
    classes = [c for c in train.classes if c.index == class_index]
    return replace(train, name=f"{train.name}-class{class_index}", classes=classes, images=images, facts={})


def rank_part(subset: Benchmark, settings: FeatureSettings) -> tuple[Benchmark, int]:
    """This rank's contiguous part of a class's images, cut at the stream's batch boundaries, and where it
    starts; the class itself on one process. Its own name gives it its own feature-cache entry; its
    batches are the single process's batches, so its features are bit-identical to them."""
    if not distributed.active():
        return subset, 0
    start, end = distributed.share_bounds(len(subset.images), settings.batch_size)
    return replace(subset, name=f"{subset.name}-rows{start}-{end}", images=subset.images[start:end]), start


def stream_part(adapter: ModelAdapter, part: Benchmark, settings: FeatureSettings) -> Iterator[tuple[list[str], torch.Tensor]]:
    """``FeatureStream.open(adapter, part, settings)``'s shards; nothing (and no cache entry) for an empty part."""
    if part.images:
        yield from FeatureStream.open(adapter, part, settings)


def check_same_inputs(what: str, models: list[ModelAdapter], train: Benchmark, settings: FeatureSettings, *extra: Any) -> None:
    """Under torchrun, fail on every rank in one line unless all ranks have the same models, training
    images, settings and ``extra``: ranks given other data would split the images wrongly."""
    if not distributed.active():
        return
    # what may differ by rank: the progress bars (rank 0's only), the loader workers, cuda:LOCAL_RANK
    options = settings.model_dump(mode="json", exclude={"progress", "num_workers", "device"})
    options["device"] = settings.device.split(":")[0]
    facts = [[m.name, m.card.weights_revision, list(m.head[0].shape)] for m in models]
    images = [[im.image_id, im.class_index] for im in train.images]
    distributed.check_same([facts, [train.name, train.revision, train.checksum, images], options, *extra], what)


__all__ = ["check_same_inputs", "class_subset", "rank_part", "stream_part"]
