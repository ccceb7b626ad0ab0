"""spurbench: measure and repair image classifiers' reliance on harmful spurious features.

The library face: what the commands do, as typed functions, each taking the typed settings its
command builds (``spurbench.settings``)::

    import spurbench
    from spurbench.settings import DiscoverySettings, RunSettings

    spurbench.list_models("timm:*resnet*"), spurbench.list_benchmarks()
    result = spurbench.evaluate(RunSettings(model=MODEL, benchmark=BENCHMARK))  # what `spurbench run` does
    index = spurbench.discover(DiscoverySettings(model=MODEL, benchmark=BENCHMARK, out="found"))  # `spurbench discover`

``fit_spufix`` (``SpuFixFitSettings``) and ``mine`` (``MiningSettings``) likewise. Type checkers see
the functions themselves; at run time each is imported on first use, so ``import spurbench`` (and
``spurbench --help``) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spurbench._version import __version__

if TYPE_CHECKING:
    from spurbench.adapters.catalog import list_models, load_model
    from spurbench.benchmarks.catalog import list_benchmarks, load_benchmark
    from spurbench.discovery.pipeline import discover
    from spurbench.harness import evaluate
    from spurbench.mining.pipeline import mine
    from spurbench.runs import fit_spufix

# name -> the module that defines it
FACE = {
    "list_models": "spurbench.adapters.catalog",
    "list_benchmarks": "spurbench.benchmarks.catalog",
    "load_model": "spurbench.adapters.catalog",
    "load_benchmark": "spurbench.benchmarks.catalog",
    "evaluate": "spurbench.harness",
    "fit_spufix": "spurbench.runs",
    "discover": "spurbench.discovery.pipeline",
    "mine": "spurbench.mining.pipeline",
}

__all__ = ["__version__", "discover", "evaluate", "fit_spufix", "list_benchmarks", "list_models", "load_benchmark", "load_model", "mine"]

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is their error, not Any

    def __getattr__(name: str) -> Any:
        if name not in FACE:
            raise AttributeError(f"module 'spurbench' has no attribute {name!r}")
        # lazy: keeps `import spurbench` (and so spurbench --help) fast; torch and timm load on first use
        return getattr(importlib.import_module(FACE[name]), name)

    def __dir__() -> list[str]:
        return sorted({*globals(), *FACE})
