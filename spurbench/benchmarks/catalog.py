"""The table of benchmark plugins at work: registry name -> :class:`BenchmarkPlugin`, found through the
entry-point group ``spurbench.benchmarks`` (the built-in ones are declared in spurbench's own
``pyproject.toml``) or registered in code with :func:`register_benchmark`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spurbench.benchmarks.base import (
    BENCHMARKS,
    Benchmark,
    BenchmarkOptions,
    BenchmarkPlugin,
)
from spurbench.benchmarks.capabilities import Capability, PublishesDataset, implements, stated
from spurbench.errors import SpurbenchError


def register_benchmark(plugin: type[BenchmarkPlugin]) -> type[BenchmarkPlugin]:
    """Register a plugin class under its ``name`` (usable as a class decorator)."""
    return BENCHMARKS.register(plugin.name, plugin)


def get_benchmark(name: str) -> BenchmarkPlugin:
    """The plugin registered as ``name``; UnknownNameError with suggestions otherwise."""
    return BENCHMARKS.get(name)()


def list_benchmarks() -> list[str]:
    """The registered benchmark plugins' names, sorted (built in, from entry points, registered in code)."""
    return BENCHMARKS.names()


def default_benchmark() -> str:
    """The name of the one registered plugin marked ``default``."""
    defaults = [name for name in BENCHMARKS.names() if BENCHMARKS.get(name).default]
    if len(defaults) != 1:
        raise SpurbenchError(f"exactly one benchmark plugin must be the default, found {defaults or 'none'}")
    return defaults[0]


def benchmarks_with(what: str | type[Capability]) -> list[str]:
    """Names of the registered plugins that have a capability (e.g. ``TrainingData``) or implement one
    of its methods (e.g. ``"training_split"``)."""
    if isinstance(what, str):
        return [name for name in BENCHMARKS.names() if implements(BENCHMARKS.get(name), what)]
    return [name for name in BENCHMARKS.names() if issubclass(BENCHMARKS.get(name), what)]


def dataset_benchmark(method: str, source: Path | None = None) -> BenchmarkPlugin:
    """The plugin a dataset command (``method``: ``build_dataset``, ``download_dataset``) acts for when the
    user names none: the one a data folder names (its ``spurbench.json`` ``kind``), else the one registered
    plugin with that method whose data does not name it."""
    names = benchmarks_with(method)
    kind = _declared_kind(source) if source is not None else None
    if kind in names:
        return get_benchmark(kind)
    unnamed = [n for n in names if not stated(BENCHMARKS.get(n), PublishesDataset, "named_by_its_data")]
    if len(unnamed) != 1:
        raise SpurbenchError(f"name the benchmark: --benchmark ({', '.join(names) or 'no registered benchmark has a Hub dataset'})")
    return get_benchmark(unnamed[0])


def _declared_kind(folder: Path) -> str | None:
    try:
        card = json.loads((Path(folder) / "spurbench.json").read_text())
    except (OSError, ValueError):
        return None  # no card (an upstream folder): nothing declared
    kind = card.get("kind") if isinstance(card, dict) else None
    return kind if isinstance(kind, str) else None


def load_benchmark(name: str | None = None, options: BenchmarkOptions | dict[str, Any] | None = None, **values: Any) -> Benchmark:
    """Load a benchmark by registry name (default: :func:`default_benchmark`); ``values`` are its options."""
    plugin = get_benchmark(name or default_benchmark())
    return plugin.load(plugin.parse_options(options if options is not None else values))


__all__ = [
    "benchmarks_with",
    "dataset_benchmark",
    "default_benchmark",
    "get_benchmark",
    "list_benchmarks",
    "load_benchmark",
    "register_benchmark",
]
