"""Model adapters: ``family:spec`` names resolved through one registry (plus entry points)."""

from __future__ import annotations

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.errors import UnknownNameError
from spurbench.registry import Registry, suggest

ADAPTERS: Registry[type[ModelAdapter]] = Registry("model family", base=ModelAdapter, entry_point_group="spurbench.adapters")
ADAPTERS.register("timm", "spurbench.adapters.timm_adapter:TimmAdapter")
ADAPTERS.register("open_clip", "spurbench.adapters.open_clip_adapter:OpenClipAdapter")
ADAPTERS.register("hf", "spurbench.adapters.hf_adapter:HFAdapter")
ADAPTERS.register("planted", "spurbench.adapters.planted:PlantedAdapter")

# Shown by `spurbench ls`.
EXAMPLES: dict[str, list[str]] = {
    "timm": ["timm:resnet50.a1_in1k", "timm:convnext_base.fb_in22k_ft_in1k", "timm:tf_efficientnet_lite0"],
    "open_clip": ["open_clip:ViT-B-32/laion2b_s34b_b79k", "open_clip:RN50/openai"],
    "hf": ["hf:google/vit-base-patch16-224", "hf:microsoft/resnet-50"],
    "planted": ["planted:cnn", "planted:resnet"],
}

DEFAULT_MODELS = ("planted:cnn", "planted:resnet")


def split_name(name: str) -> tuple[str, str]:
    family, sep, spec = name.partition(":")
    if not sep or not spec:
        raise UnknownNameError(
            f"model name {name!r} must look like FAMILY:SPEC (families: {', '.join(ADAPTERS.names())}).{suggest(name, [e for v in EXAMPLES.values() for e in v])}"
        )
    return family, spec


def check_model_name(name: str) -> None:
    """Fail early, with suggestions, on an unknown family or spec."""
    family, spec = split_name(name)
    ADAPTERS.get(family).check_spec(spec)


def load_model(name: str, *, checkpoint: str | None = None, pretrained: bool = True, device: str = "cpu") -> ModelAdapter:
    """Build the adapter for ``family:spec``, e.g. ``timm:resnet50.a1_in1k`` or ``planted:cnn``."""
    family, spec = split_name(name)
    adapter_cls = ADAPTERS.get(family)
    return adapter_cls(spec, checkpoint=checkpoint, pretrained=pretrained).to(device)


__all__ = ["ADAPTERS", "EXAMPLES", "DEFAULT_MODELS", "ModelAdapter", "ModelCard", "check_model_name", "load_model", "split_name"]
