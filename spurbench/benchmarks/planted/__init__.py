"""The ``planted`` benchmark plugin: generated shapes with planted spurious features, embedded (no downloads).

Everything this benchmark knows lives in this subpackage, but for its generator, which ``planted-salient``
shares (``spurbench.benchmarks.shared.planted_generator``, handed on as ``generator``): the two
small classifiers trained on it (``models``, adapter family ``planted``), its splits as benchmarks
(test, validation, training), what ``leaderboard verify`` checks results against (the generator
regenerates any revision), its ground truth (which classes carry which feature, and which
training images carry it), and an unlabelled pool to mine spurious images from (``mining_pool``,
:func:`write_pool`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import Field

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    ExampleImage,
    GroundTruth,
    PoolTruth,
    Reference,
)
from spurbench.benchmarks.shared.planted_generator import (
    CONTROL_GROUP,
    FEATURE_DESCRIPTIONS,
    FEATURE_NAMES,
    GENERATED_BY,
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
from spurbench.errors import SpurbenchError
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

NAME = "planted"


class PlantedOptions(BenchmarkOptions):
    seed: int = Field(default=0, ge=0, lt=10**9)  # generator seed


def _loader(array: np.ndarray) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(array)


def _class(k: int, components: Sequence[int] = ()) -> BenchmarkClass:
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
    for k, class_name in enumerate(PLANTED_CLASSES):
        for role, split, split_name in (("positive", sets.clean, "clean"), ("negative", sets.spurious, "spurious")):
            for i, row in enumerate(np.flatnonzero(split.labels == k)[:limit]):
                image_id = f"{prefix}/{split_name}/{class_name}/{i}"
                component = int(split.feature_of[row]) if role == "negative" else None
                origin = f"planted-generator seed={seed} {image_id}"
                images.append(BenchmarkImage(image_id, k, role, component, origin, _loader(split.images[row])))  # type: ignore[arg-type]
        classes.append(_class(k, sorted({int(f) for f in sets.spurious.feature_of[sets.spurious.labels == k]})))
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
    classes = [_class(k) for k in range(len(PLANTED_CLASSES))]
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


_REVISION = re.compile(rf"generator-v{GENERATOR_VERSION}-seed([0-9]{{1,9}})")


class PlantedBenchmark(BenchmarkPlugin):
    name = NAME
    description = "generated shapes with planted spurious features; embedded, no downloads (models: planted:cnn, planted:resnet)"
    options_model = PlantedOptions
    label_space = NAME
    default_models = ("planted:cnn", "planted:resnet")
    default = True
    positives_crop_pct = 1.0  # generated at the models' size, like its own benchmark's
    protocols = PROTOCOLS

    def load(self, options: BenchmarkOptions) -> Benchmark:
        options = self.parse_options(options)
        return evaluation_benchmark(options.seed, options.limit)  # type: ignore[attr-defined]

    def reference(self, revision: str) -> Reference | None:
        match = _REVISION.fullmatch(revision)
        if match is None:
            return None
        bench = evaluation_benchmark(int(match[1]))  # the generator regenerates any revision exactly
        return Reference(NAME, revision, bench.checksum or "", {im.image_id: (im.class_index, im.role) for im in bench.images})

    def training_split(self, classes: Sequence[int] | None, source: str | None = None, limit: int | None = None) -> Benchmark:
        if source not in (None, "", NAME):
            raise SpurbenchError(f"benchmark {NAME!r} generates its training images; it takes no training data source ({source!r})")
        bench, _ = training_benchmark(limit=limit)
        if classes is not None:
            wanted = set(classes)
            bench.images = [im for im in bench.images if im.class_index in wanted]
        return bench

    def ground_truth(self, options: BenchmarkOptions) -> GroundTruth:
        seed = self.parse_options(options).seed  # type: ignore[attr-defined]
        train, carriers = training_benchmark(seed=seed)
        return GroundTruth(train=train, validation=validation_benchmark(seed), features=dict(PLANTED_FEATURE_IDS), carriers=carriers)

    def positives(self, class_indices: Sequence[int], options: BenchmarkOptions) -> tuple[list[BenchmarkImage], list[BenchmarkClass], str]:
        """The clean test positives of ``class_indices`` (those of :func:`evaluation_benchmark`), at most
        ``limit`` per class, and the classes' records."""
        options = self.parse_options(options)
        wanted = sorted(set(class_indices))
        unknown = [k for k in wanted if not 0 <= k < len(PLANTED_CLASSES)]
        if unknown:
            raise SpurbenchError(f"benchmark {NAME!r} has classes 0-{len(PLANTED_CLASSES) - 1}, not {unknown[0]}")
        seed = options.seed  # type: ignore[attr-defined]
        bench = evaluation_benchmark(seed, options.limit)
        images = [im for im in bench.images if im.role == "positive" and im.class_index in wanted]
        return images, [_class(k) for k in wanted], f"generator (planted test positives, {bench.revision})"

    def mining_pool(self, options: BenchmarkOptions) -> tuple[Benchmark, PoolTruth | None]:
        options = self.parse_options(options)
        return pool_benchmark(options.seed, options.limit)  # type: ignore[attr-defined]

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        """The first spurious-only test image of each of the worst classes (generated: always shown)."""
        match = _REVISION.fullmatch(revision or "")
        if benchmark_name != NAME or match is None:
            return []
        bench = evaluation_benchmark(int(match[1]), limit=1)
        negatives = {im.class_index: im for im in bench.images if im.role == "negative"}
        return [
            ExampleImage(
                negatives[k].open().resize((160, 160), Image.NEAREST),
                f"{PLANTED_CLASSES[k]}: spurious-only image ({FEATURE_NAMES[negatives[k].component]}, no {PLANTED_CLASSES[k]})",
                GENERATED_BY,
            )
            for k in worst_classes[:3]
            if k in negatives
        ]


__all__ = [
    "PlantedBenchmark",
    "PlantedOptions",
    "evaluation_benchmark",
    "pool_benchmark",
    "training_benchmark",
    "validation_benchmark",
    "write_pool",
]
