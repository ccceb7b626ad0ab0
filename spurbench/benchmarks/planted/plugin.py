"""The ``planted`` plugin class: its options, and the generator's splits (``splits``) served through
the plugin contract (the benchmark, its reference, training split, ground truth, positives, mining pool
and the board's example pictures)."""

from __future__ import annotations

import re
from collections.abc import Sequence

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
from spurbench.benchmarks.capabilities import GivesPositives, GroundTruthSource, MinesPools, ShowsExamples, TrainingData
from spurbench.benchmarks.planted.splits import (
    NAME,
    PROTOCOLS,
    class_record,
    evaluation_benchmark,
    pool_benchmark,
    training_benchmark,
    validation_benchmark,
)
from spurbench.benchmarks.shared.planted_generator import (
    FEATURE_NAMES,
    GENERATED_BY,
    GENERATOR_VERSION,
    PLANTED_CLASSES,
    PLANTED_FEATURE_IDS,
)
from spurbench.errors import SpurbenchError


class PlantedOptions(BenchmarkOptions):
    seed: int = Field(default=0, ge=0, lt=10**9)  # generator seed


_REVISION = re.compile(rf"generator-v{GENERATOR_VERSION}-seed([0-9]{{1,9}})")


class PlantedBenchmark(TrainingData, GroundTruthSource, MinesPools, GivesPositives, ShowsExamples, BenchmarkPlugin):
    name = NAME
    description = "generated shapes with planted spurious features; embedded, no downloads (models: planted:cnn, planted:resnet)"
    options_model = PlantedOptions
    label_space = NAME
    default_models = ("planted:cnn", "planted:resnet")
    default = True
    positives_crop_pct = 1.0  # generated at the models' size, like its own benchmark's
    protocols = PROTOCOLS

    def _options(self, options: BenchmarkOptions) -> PlantedOptions:
        opts = self.parse_options(options)
        assert isinstance(opts, PlantedOptions)  # parse_options gives options_model
        return opts

    def load(self, options: BenchmarkOptions) -> Benchmark:
        opts = self._options(options)
        return evaluation_benchmark(opts.seed, opts.limit)

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
        seed = self._options(options).seed
        train, carriers = training_benchmark(seed=seed)
        return GroundTruth(train=train, validation=validation_benchmark(seed), features=dict(PLANTED_FEATURE_IDS), carriers=carriers)

    def positives(self, class_indices: Sequence[int], options: BenchmarkOptions) -> tuple[list[BenchmarkImage], list[BenchmarkClass], str]:
        """The clean test positives of ``class_indices`` (those of :func:`evaluation_benchmark`), at most
        ``limit`` per class, and the classes' records."""
        opts = self._options(options)
        wanted = sorted(set(class_indices))
        unknown = [k for k in wanted if not 0 <= k < len(PLANTED_CLASSES)]
        if unknown:
            raise SpurbenchError(f"benchmark {NAME!r} has classes 0-{len(PLANTED_CLASSES) - 1}, not {unknown[0]}")
        bench = evaluation_benchmark(opts.seed, opts.limit)
        images = [im for im in bench.images if im.role == "positive" and im.class_index in wanted]
        return images, [class_record(k) for k in wanted], f"generator (planted test positives, {bench.revision})"

    def mining_pool(self, options: BenchmarkOptions) -> tuple[Benchmark, PoolTruth | None]:
        opts = self._options(options)
        return pool_benchmark(opts.seed, opts.limit)

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        """The first spurious-only test image of each of the worst classes (generated: always shown)."""
        match = _REVISION.fullmatch(revision or "")
        if benchmark_name != NAME or match is None:
            return []
        bench = evaluation_benchmark(int(match[1]), limit=1)
        negatives = {im.class_index: im for im in bench.images if im.role == "negative"}
        pictures = []
        for k in worst_classes[:3]:
            image = negatives.get(k)
            if image is not None and image.component is not None:  # (a negative always shows its component)
                caption = f"{PLANTED_CLASSES[k]}: spurious-only image ({FEATURE_NAMES[image.component]}, no {PLANTED_CLASSES[k]})"
                pictures.append(ExampleImage(image.open().resize((160, 160), Image.Resampling.NEAREST), caption, GENERATED_BY))
        return pictures
