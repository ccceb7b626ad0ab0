"""Benchmarks: registry name -> loader function ``(BenchmarkOptions) -> Benchmark``."""

from __future__ import annotations

from typing import Callable

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
)
from spurbench.registry import Registry

BENCHMARKS: Registry[Callable[[BenchmarkOptions], Benchmark]] = Registry("benchmark")
BENCHMARKS.register("planted", "spurbench.benchmarks.planted:load_planted")
BENCHMARKS.register("spurious-imagenet", "spurbench.benchmarks.spurious_imagenet:load_spurious_imagenet")

DEFAULT_BENCHMARK = "planted"


def load_benchmark(name: str = DEFAULT_BENCHMARK, options: BenchmarkOptions | None = None, **kwargs) -> Benchmark:
    """Load a benchmark by registry name. ``kwargs`` are fields of ``BenchmarkOptions``."""
    if options is None:
        options = BenchmarkOptions(**kwargs)
    return BENCHMARKS.get(name)(options)


__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkClass", "BenchmarkImage", "BenchmarkOptions", "load_benchmark", "DEFAULT_BENCHMARK"]
