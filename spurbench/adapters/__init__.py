"""Model adapters: ``family:spec`` names resolved through one registry (built-ins plus the entry-point
group ``spurbench.adapters``, through which benchmark plugins and third parties add families). This
file only hands names on: the adapter contract is in ``base.py``, the registry and its functions in
``catalog.py``, each family in its ``*_adapter.py``."""

from __future__ import annotations

from spurbench.adapters.base import DeclaredModel, ModelAdapter, ModelCard
from spurbench.adapters.catalog import ADAPTERS, check_model_name, declared_model, list_models, load_model, split_name

__all__ = [
    "ADAPTERS",
    "DeclaredModel",
    "ModelAdapter",
    "ModelCard",
    "check_model_name",
    "declared_model",
    "list_models",
    "load_model",
    "split_name",
]
