"""Image transforms: the model's own timm data config, or the paper's protocol.

``paper`` reproduces the Spurious ImageNet code: spurious-only images are resized
(short side to the input size, bicubic) without a crop; ImageNet-val images are
resized to 256/224 x size and center-cropped. ``model`` uses each model's own
timm eval transform for both sets. Both normalise with the model's mean/std.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from PIL import Image
from torchvision import transforms as T

Protocol = Literal["paper", "model"]
Role = Literal["positive", "negative"]
PROTOCOLS: tuple[str, ...] = ("paper", "model")


def check_protocol(protocol: str) -> None:
    """One-line SpurbenchError for a protocol name this module does not define."""
    if protocol not in PROTOCOLS:
        from spurbench.errors import SpurbenchError

        raise SpurbenchError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def model_transform(data_config: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """timm's eval transform for this data config."""
    from timm.data import create_transform

    config = {k: data_config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in data_config}
    return create_transform(**config, is_training=False)


def _to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def build_transform(
    data_config: dict[str, Any], protocol: str, role: Role, positive_crop_pct: float = 224 / 256
) -> Callable[[Image.Image], torch.Tensor]:
    """Transform for one image role ("positive" = class images, "negative" = spurious-only images)."""
    check_protocol(protocol)
    if protocol == "model":
        return T.Compose([_to_rgb, model_transform(data_config)])
    size = int(data_config["input_size"][-1])
    normalize = T.Normalize(mean=data_config["mean"], std=data_config["std"])
    if role == "negative":
        # Upstream resizes the short side only. CenterCrop is a no-op for square images (Spurious
        # ImageNet ships square images); it only keeps batches stackable for odd local data.
        steps = [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)]
    else:
        steps = [T.Resize(int(math.floor(size / positive_crop_pct)), interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)]
    return T.Compose([_to_rgb, *steps, T.ToTensor(), normalize])


def describe(protocol: str) -> str:
    return {
        "paper": "negatives: bicubic resize of the short side to the input size, no crop; positives: resize to 256/224 x size, center crop; model mean/std",
        "model": "each model's own timm eval transform (data config) for both sets",
    }[protocol]
