"""The ``planted`` benchmark plugin: generated shapes with planted spurious features, embedded (no downloads).

Everything this benchmark knows lives in this subpackage, but for its generator, which ``planted-salient``
shares (``spurbench.benchmarks.shared.planted_generator``): the two small classifiers trained on it
(``models``, adapter family ``planted``), its splits as benchmarks (``splits``: test, validation,
training), what ``leaderboard verify`` checks results against (the generator regenerates any revision),
its ground truth (which classes carry which feature, and which training images carry it), and an
unlabelled pool to mine spurious images from (``mining_pool``, :func:`write_pool`); the plugin class is
in ``plugin``. This file only hands names on.
"""

from __future__ import annotations

from spurbench.benchmarks.planted.plugin import PlantedBenchmark, PlantedOptions
from spurbench.benchmarks.planted.splits import (
    NAME,
    PROTOCOLS,
    evaluation_benchmark,
    pool_benchmark,
    training_benchmark,
    validation_benchmark,
    write_pool,
)

__all__ = [
    "NAME",
    "PROTOCOLS",
    "PlantedBenchmark",
    "PlantedOptions",
    "evaluation_benchmark",
    "pool_benchmark",
    "training_benchmark",
    "validation_benchmark",
    "write_pool",
]
