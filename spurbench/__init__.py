"""spurbench: measure and repair image classifiers' reliance on harmful spurious features."""

from __future__ import annotations

from spurbench._version import __version__

__all__ = ["__version__", "evaluate", "load_benchmark", "load_model"]


def __getattr__(name: str):
    if name not in ("load_model", "load_benchmark", "evaluate"):
        raise AttributeError(f"module 'spurbench' has no attribute {name!r}")
    # lazy: keeps `import spurbench` (and so spurbench --help) fast; torch and timm load on first use
    from spurbench import adapters, benchmarks, harness

    return {"load_model": adapters.load_model, "load_benchmark": benchmarks.load_benchmark, "evaluate": harness.evaluate}[name]
