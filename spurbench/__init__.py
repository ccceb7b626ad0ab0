"""spurbench: measure and repair image classifiers' reliance on harmful spurious features."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "load_benchmark", "evaluate"]


def __getattr__(name: str):
    # Lazy so that `import spurbench` (and `spurbench --help`) stays fast: torch/timm load on first use.
    if name == "load_model":
        from spurbench.adapters import load_model

        return load_model
    if name == "load_benchmark":
        from spurbench.benchmarks import load_benchmark

        return load_benchmark
    if name == "evaluate":
        from spurbench.harness import evaluate

        return evaluate
    raise AttributeError(f"module 'spurbench' has no attribute {name!r}")
