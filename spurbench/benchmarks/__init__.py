"""Benchmarks: registry name -> :class:`BenchmarkPlugin`, found through the entry-point group
``spurbench.benchmarks`` (the built-in ones are declared in spurbench's own ``pyproject.toml``) or
registered in code with :func:`register_benchmark`. This file only hands names on: the records are in
``data.py``, the plugin contract and its table in ``base.py``, the plugins' optional capabilities in
``capabilities.py``, the table's functions in ``catalog.py``."""

from __future__ import annotations

from spurbench.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
    BenchmarkPlugin,
    GroundTruth,
    MinedImage,
    PoolTruth,
    Reference,
)
from spurbench.benchmarks.capabilities import (
    AddsMetrics,
    Capability,
    GivesPositives,
    GroundTruthSource,
    MinesPools,
    PublishesDataset,
    ScoresViews,
    ShowsExamples,
    TrainingData,
    WritesMined,
    capabilities_of,
    require,
)
from spurbench.benchmarks.catalog import (
    benchmarks_with,
    dataset_benchmark,
    default_benchmark,
    get_benchmark,
    list_benchmarks,
    load_benchmark,
    register_benchmark,
)

__all__ = [
    "BENCHMARKS",
    "AddsMetrics",
    "Benchmark",
    "BenchmarkClass",
    "BenchmarkImage",
    "BenchmarkOptions",
    "BenchmarkPlugin",
    "Capability",
    "GivesPositives",
    "GroundTruth",
    "GroundTruthSource",
    "MinedImage",
    "MinesPools",
    "PoolTruth",
    "PublishesDataset",
    "Reference",
    "ScoresViews",
    "ShowsExamples",
    "TrainingData",
    "WritesMined",
    "benchmarks_with",
    "capabilities_of",
    "dataset_benchmark",
    "default_benchmark",
    "get_benchmark",
    "list_benchmarks",
    "load_benchmark",
    "register_benchmark",
    "require",
]
