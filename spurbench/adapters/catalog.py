"""The table of model families at work: ``family:spec`` names resolved through one registry (built-ins
plus the entry-point group ``spurbench.adapters``, through which benchmark plugins and third parties
add families), and the functions that load, check and list models by name."""

from __future__ import annotations

from spurbench.adapters.base import DeclaredModel, ModelAdapter
from spurbench.errors import UnknownNameError
from spurbench.registry import Registry

# Lazy "module:attr" entries: a family's library (timm, open_clip, transformers) loads on first use.
ADAPTERS: Registry[type[ModelAdapter]] = Registry("model family", base=ModelAdapter, entry_point_group="spurbench.adapters")
ADAPTERS.register("timm", "spurbench.adapters.timm_adapter:TimmAdapter")
ADAPTERS.register("open_clip", "spurbench.adapters.open_clip_adapter:OpenClipAdapter")
ADAPTERS.register("hf", "spurbench.adapters.hf_adapter:HFAdapter")


def split_name(name: str) -> tuple[str, str]:
    family, sep, spec = name.partition(":")
    if not sep or not spec:
        raise UnknownNameError(
            f"model name {name!r} must look like FAMILY:SPEC, e.g. timm:resnet50.a1_in1k (families: {', '.join(ADAPTERS.names())})"
        )
    return family, spec


def check_model_name(name: str) -> None:
    """Fail early, with suggestions, on an unknown family or spec."""
    family, spec = split_name(name)
    ADAPTERS.get(family).check_spec(spec)


def declared_model(name: str) -> DeclaredModel | None:
    """What ``name`` alone tells of its label space, before any weights load (``ModelAdapter.declared``)."""
    family, spec = split_name(name)
    return ADAPTERS.get(family).declared(spec)


def load_model(name: str, *, checkpoint: str | None = None, pretrained: bool = True, device: str = "cpu") -> ModelAdapter:
    """Build the adapter for ``family:spec``, e.g. ``timm:resnet50.a1_in1k`` (see ``ModelAdapter.load``)."""
    family, spec = split_name(name)
    return ADAPTERS.get(family).load(spec, checkpoint=checkpoint, pretrained=pretrained).to(device)


def list_models(pattern: str = "*") -> dict[str, list[str]]:
    """family -> the loadable names its library lists for ``pattern`` (``ModelAdapter.list_names``)."""
    return {family: ADAPTERS.get(family).list_names(pattern) for family in ADAPTERS.names()}
