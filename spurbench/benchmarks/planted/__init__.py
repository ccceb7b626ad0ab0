"""The ``planted`` benchmark plugin: generated shapes with planted spurious features, embedded (no downloads).

Everything this benchmark knows lives in this subpackage: the generator (``generator``), the two
small classifiers trained on it (``models``, adapter family ``planted``), its splits as benchmarks
(test, validation, training), what ``leaderboard verify`` checks results against (the generator
regenerates any revision), and its ground truth (which classes carry which feature, and which
training images carry it).
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from pydantic import Field

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    GroundTruth,
    Reference,
)
from spurbench.benchmarks.planted.generator import (
    FEATURE_DESCRIPTIONS,
    FEATURE_NAMES,
    GENERATOR_VERSION,
    PLANTED_CLASSES,
    PLANTED_FEATURE_IDS,
    PLANTED_FEATURES,
    PlantedSplit,
    PlantedTestSets,
    generate_test_sets,
    generate_training_set,
    generate_validation_sets,
    ground_truth,
)
from spurbench.errors import SpurbenchError

NAME = "planted"
PLANTED_GROUP, CONTROL_GROUP = "planted", "control"


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
        positive_crop_pct=1.0,
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
            images.append(BenchmarkImage(ids[row], k, "positive", None, f"planted-generator seed={seed} {ids[row]}", _loader(train.images[row])))
            if train.feature_of[row] >= 0:
                carriers[ids[row]] = int(train.feature_of[row])
    digest = hashlib.sha256()
    for arr in (train.images, train.labels, train.feature_of):
        digest.update(np.ascontiguousarray(arr).tobytes())
    classes = [_class(k) for k in range(len(PLANTED_CLASSES))]
    return _generated(f"{NAME}-train", f"seed{seed}-train", classes, images, digest.hexdigest()), carriers


_REVISION = re.compile(rf"generator-v{GENERATOR_VERSION}-seed([0-9]{{1,9}})")


class PlantedBenchmark(BenchmarkPlugin):
    name = NAME
    description = "generated shapes with planted spurious features; embedded, no downloads (models: planted:cnn, planted:resnet)"
    options_model = PlantedOptions
    label_space = NAME
    default_models = ("planted:cnn", "planted:resnet")
    default = True

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


__all__ = ["PlantedBenchmark", "PlantedOptions", "evaluation_benchmark", "training_benchmark", "validation_benchmark"]
