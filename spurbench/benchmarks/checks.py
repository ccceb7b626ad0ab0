"""Checks of what a benchmark plugin states: each role's geometry (``Benchmark.positive_crop_pct`` and
``negative_crop_pct``, ``BenchmarkPlugin.positives_crop_pct``), and where a model of another label space
can run instead."""

from __future__ import annotations

from typing import Any

from spurbench.errors import SpurbenchError
from spurbench.imagenet import maps_to


def crop_pct_problem(value: Any) -> str | None:
    if value is None:
        return "states none"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        return f"is {value!r}, not a number in (0, 1]"
    return None


def check_geometry(name: str, positive_crop_pct: Any, negative_crop_pct: Any) -> None:
    """A one-line SpurbenchError unless both roles' paper-protocol geometry is stated (see ``Benchmark``)."""
    problem = crop_pct_problem(positive_crop_pct)
    if problem:
        raise SpurbenchError(
            f"benchmark {name!r}: the geometry of its class images {problem}; set Benchmark(positive_crop_pct=...): "
            "224 / 256 to resize and centre-crop photos as ImageNet val is, 1.0 for images that already have the model's size"
        )
    if negative_crop_pct is None:
        raise SpurbenchError(f"benchmark {name!r}: the geometry of its spurious-only images states none; set Benchmark(negative_crop_pct=1.0) (resized to the model's size, never cropped)")
    if negative_crop_pct != 1.0 or isinstance(negative_crop_pct, bool):
        raise SpurbenchError(f"benchmark {name!r}: negative_crop_pct is {negative_crop_pct!r}; spurious-only images are resized to the model's size without a crop, so it must be 1.0")


def where_it_runs(model_space: str) -> str:
    """The registered benchmarks a model of ``model_space`` can run on, as the end of a refusal."""
    # lazy: circular (the registry's module imports the plugin contract, which calls this)
    from spurbench.benchmarks import BENCHMARKS

    fits = []
    for name in BENCHMARKS.names():
        try:
            space = BENCHMARKS.get(name).label_space
        except Exception:  # a third-party plugin that does not import is no suggestion (its own use says why)
            continue
        if space is not None and maps_to(space, model_space):
            fits.append(name)
    return f"benchmarks it can run on: {', '.join(fits)} (--benchmark NAME)" if fits else "no registered benchmark has that label space"


__all__ = ["check_geometry", "crop_pct_problem", "where_it_runs"]
