"""The planted generator's splits as benchmarks: the test set (the benchmark itself), its validation
twin, the training images and the unlabelled mining pool (also written as PNG files, :func:`write_pool`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage, PoolTruth
from spurbench.benchmarks.data import Role
from spurbench.benchmarks.shared.planted_generator import (
    CONTROL_GROUP,
    FEATURE_DESCRIPTIONS,
    FEATURE_NAMES,
    GENERATOR_VERSION,
    PLANTED_CLASSES,
    PLANTED_FEATURE_IDS,
    PLANTED_FEATURES,
    PLANTED_GROUP,
    PlantedSplit,
    PlantedTestSets,
    generate_pool,
    generate_test_sets,
    generate_training_set,
    generate_validation_sets,
    ground_truth,
    pool_checksum,
    pool_mix,
)
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

NAME = "planted"


def _loader(array: np.ndarray) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(array)


def class_record(k: int, components: Sequence[int] = ()) -> BenchmarkClass:
    """Class ``k``'s record: its name, group (planted or control) and planted feature."""
    planted = k in PLANTED_FEATURE_IDS
    return BenchmarkClass(
        index=k,
        name=PLANTED_CLASSES[k],
        components=tuple(components),
        group=PLANTED_GROUP if planted else CONTROL_GROUP,
        feature=FEATURE_DESCRIPTIONS[PLANTED_FEATURES[k]] if planted else None,
    )


def _held_out_benchmark(name: str, suffix: str, sets: PlantedTestSets, seed: int, limit: int | None) -> Benchmark:
    prefix = NAME + suffix
    classes: list[BenchmarkClass] = []
    images: list[BenchmarkImage] = []
    splits: tuple[tuple[Role, PlantedSplit, str], ...] = (("positive", sets.clean, "clean"), ("negative", sets.spurious, "spurious"))
    for k, class_name in enumerate(PLANTED_CLASSES):
        for role, split, split_name in splits:
            for i, row in enumerate(np.flatnonzero(split.labels == k)[:limit]):
                image_id = f"{prefix}/{split_name}/{class_name}/{i}"
                component = int(split.feature_of[row]) if role == "negative" else None
                origin = f"planted-generator seed={seed} {image_id}"
                images.append(BenchmarkImage(image_id, k, role, component, origin, _loader(split.images[row])))
        classes.append(class_record(k, sorted({int(f) for f in sets.spurious.feature_of[sets.spurious.labels == k]})))
    return _generated(name, f"seed{seed}{suffix}", classes, images, sets.checksum())


# planted has no published protocol of its own: its ``paper`` is Spurious ImageNet's authors' steps,
# on images generated at the models' size (so nothing is cropped)
PROTOCOLS = protocol_table(
    fixed_paper(
        1.0,
        by="no published protocol (spurbench's own benchmark): Spurious ImageNet's authors' steps on images generated at the model's size",
    ),
    MODEL_TRANSFORM,
)


def _generated(name: str, revision: str, classes: list[BenchmarkClass], images: list[BenchmarkImage], checksum: str) -> Benchmark:
    """A split of the generator as a ``Benchmark``: images already at the models' size (no crop)."""
    return Benchmark(
        name=name,
        label_space=NAME,
        classes=classes,
        images=images,
        revision=f"generator-v{GENERATOR_VERSION}-{revision}",
        checksum=checksum,
        positives_source="generator",
        protocols=PROTOCOLS,
        component_names=dict(enumerate(FEATURE_NAMES)),
        facts={"ground_truth": ground_truth()},
    )


def evaluation_benchmark(seed: int = 0, limit: int | None = None) -> Benchmark:
    """The benchmark: per class, clean generated positives and feature-only negatives. A negative's
    component id is the id (index of ``FEATURE_NAMES``) of the feature it shows."""
    return _held_out_benchmark(NAME, "", generate_test_sets(seed), seed, limit)


def validation_benchmark(seed: int = 0, limit: int | None = None) -> Benchmark:
    """The benchmark's validation twin (:func:`generate_validation_sets`): same make-up, other images."""
    return _held_out_benchmark(f"{NAME}-validation", "-validation", generate_validation_sets(seed), seed, limit)


def _train_ids(train: PlantedSplit) -> list[str]:
    # i-th image of its class in generation order: stable under ``limit``
    seen: dict[int, int] = {}
    ids = []
    for label in train.labels:
        i = seen.get(int(label), 0)
        seen[int(label)] = i + 1
        ids.append(f"{NAME}/train/{PLANTED_CLASSES[int(label)]}/{i}")
    return ids


def training_benchmark(limit: int | None = None, seed: int = 0) -> tuple[Benchmark, dict[str, int]]:
    """The training images (all ``role="positive"``, sorted by class) as a benchmark, and the ids of
    those that carry a planted feature -> that feature's id."""
    train = generate_training_set(seed)
    ids = _train_ids(train)
    images: list[BenchmarkImage] = []
    carriers: dict[str, int] = {}
    for k in range(len(PLANTED_CLASSES)):
        for row in np.flatnonzero(train.labels == k)[:limit]:
            images.append(
                BenchmarkImage(ids[row], k, "positive", None, f"planted-generator seed={seed} {ids[row]}", _loader(train.images[row]))
            )
            if train.feature_of[row] >= 0:
                carriers[ids[row]] = int(train.feature_of[row])
    digest = hashlib.sha256()
    for arr in (train.images, train.labels, train.feature_of):
        digest.update(np.ascontiguousarray(arr).tobytes())
    classes = [class_record(k) for k in range(len(PLANTED_CLASSES))]
    return _generated(f"{NAME}-train", f"seed{seed}-train", classes, images, digest.hexdigest()), carriers


def _pool_truth(pool: PlantedSplit, ids: Sequence[str]) -> PoolTruth:
    objects = {i: int(k) if has else None for i, k, has in zip(ids, pool.labels, pool.has_object)}
    features = {i: int(f) if f >= 0 else None for i, f in zip(ids, pool.feature_of)}
    return PoolTruth(objects=objects, features=features)


def pool_benchmark(seed: int = 0, limit: int | None = None) -> tuple[Benchmark, PoolTruth]:
    """The mining pool (:func:`~spurbench.benchmarks.shared.planted_generator.generate_pool`) as an unlabelled
    benchmark ``planted-pool``: image ``i`` is ``planted/pool/{i}``, ``class_index=-1``, ``role="negative"``,
    no component; and what each image holds. ``limit``: only the first ``limit`` images (shuffled order)."""
    pool = generate_pool(seed)
    n = len(pool) if limit is None else min(limit, len(pool))
    ids = [f"{NAME}/pool/{i}" for i in range(n)]
    images = [
        BenchmarkImage(ids[i], -1, "negative", None, f"planted-generator seed={seed} pool/{i}", _loader(pool.images[i])) for i in range(n)
    ]
    bench = _generated(f"{NAME}-pool", f"seed{seed}-pool", [], images, pool_checksum(pool))
    bench.facts["pool_mix"] = pool_mix()
    return bench, _pool_truth(pool, ids)


def write_pool(folder: Path, seed: int = 0) -> PoolTruth:
    """Write the mining pool as PNG files ``folder/part-{i // 500}/{i}.png`` (a folder tree, as an
    unlabelled pool on disk would be) and return what each holds, keyed by the file's path relative to
    ``folder`` in POSIX form (``part-0/17.png``): the image id a folder pool gets."""
    pool = generate_pool(seed)
    ids = [f"part-{i // 500}/{i}.png" for i in range(len(pool))]
    for image_id, array in zip(ids, pool.images):
        path = Path(folder) / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
    return _pool_truth(pool, ids)
