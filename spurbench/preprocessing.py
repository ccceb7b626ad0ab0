"""Image transforms: the model's own timm data config, or the paper's protocol.

``paper`` reproduces the authors' evaluation code (Neuhaus et al., ICCV 2023): spurious-only images are resized
(short side to the input size, bicubic) without a crop; ImageNet-val images are
resized to 256/224 x size and center-cropped. ``model`` uses each model's own
timm eval transform for both sets. Both normalise with the model's mean/std.

Input size: both protocols evaluate at the weights' *test* size where their config has one
(``test_input_size``, e.g. 288 px for ``resnet50.a1_in1k``, trained at 224 px), else at ``input_size``.
The authors' evaluation does this (``dataset/spurious_score.py``: ``test_input_size`` if the
pretrained config has it), and so does timm's ``validate.py`` by default (``use_test_size=not
--use-train-size``), which also takes ``test_crop_pct``; ``model`` follows validate.py, ``paper``
keeps the authors' fixed 224/256 crop of the val images.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from PIL import Image
from timm.data import create_transform
from torchvision import transforms as T

from spurbench.errors import SpurbenchError

Protocol = Literal["paper", "model"]
Role = Literal["positive", "negative"]
PROTOCOLS: tuple[str, ...] = ("paper", "model")


def check_protocol(protocol: str) -> None:
    """One-line SpurbenchError for a protocol name this module does not define."""
    if protocol not in PROTOCOLS:
        raise SpurbenchError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def eval_data_config(data_config: dict[str, Any], protocol: str) -> dict[str, Any]:
    """The data config a protocol evaluates with: the test-time size (and, for ``model``, the test-time
    crop) replaces the train-time one where the weights' config has them (see the module docstring)."""
    check_protocol(protocol)
    config = dict(data_config)
    if config.get("test_input_size"):
        config["input_size"] = tuple(config["test_input_size"])
    if protocol == "model" and config.get("test_crop_pct"):
        config["crop_pct"] = config["test_crop_pct"]
    return config


def role_geometry(data_config: dict[str, Any], protocol: str, role: Role, positive_crop_pct: float = 224 / 256) -> dict[str, Any]:
    """What an image of this role is turned into: ``input_size`` [C, H, W] and the ``crop_pct`` of its
    center crop (1.0: the resized image is the input). Recorded in every result file."""
    config = eval_data_config(data_config, protocol)
    if protocol == "model":
        crop_pct = float(config.get("crop_pct", 1.0))
    else:
        crop_pct = 1.0 if role == "negative" else float(positive_crop_pct)
    return {"input_size": [int(v) for v in config["input_size"]], "crop_pct": crop_pct}


def model_transform(data_config: dict[str, Any], normalize: bool = True) -> Callable[[Image.Image], torch.Tensor]:
    """timm's eval transform for this data config, at the test-time size as timm's validate.py uses it
    (``normalize=False``: the same without the mean/std step, values in [0, 1])."""
    config = eval_data_config(data_config, "model")
    config = {k: config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in config}
    if not normalize:
        config.update(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return create_transform(**config, is_training=False)


def normalizer(data_config: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's mean/std step alone: what a views benchmark applies after rendering its views."""
    return T.Normalize(mean=data_config["mean"], std=data_config["std"])


def _to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def build_transform(
    data_config: dict[str, Any], protocol: str, role: Role, positive_crop_pct: float = 224 / 256, normalize: bool = True, interpolation: str | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """Transform for one image role ("positive" = class images, "negative" = spurious-only images);
    ``normalize=False`` stops before the mean/std step (values in [0, 1], see :func:`normalizer`);
    ``interpolation`` replaces the paper protocol's bicubic resize (a benchmark's own, e.g. bilinear)."""
    check_protocol(protocol)
    if protocol == "model":
        return T.Compose([_to_rgb, model_transform(data_config, normalize)])
    size = int(eval_data_config(data_config, protocol)["input_size"][-1])
    if role == "negative":
        # Upstream resizes the short side only. CenterCrop is a no-op for square images (Spurious
        # ImageNet ships square images); it only keeps batches stackable for odd local data.
        steps = [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)]
    else:
        mode = T.InterpolationMode(interpolation) if interpolation else T.InterpolationMode.BICUBIC
        steps = [T.Resize(int(math.floor(size / positive_crop_pct)), interpolation=mode), T.CenterCrop(size)]
    return T.Compose([_to_rgb, *steps, T.ToTensor(), *([T.Normalize(mean=data_config["mean"], std=data_config["std"])] if normalize else [])])


def describe(protocol: str) -> str:
    return {
        "paper": "the authors' evaluation: the weights' test_input_size if their config has one, else input_size; negatives: bicubic resize of the short side to that size, no crop; positives: bicubic resize to 256/224 x size, center crop; model mean/std",
        "model": "each model's own timm eval transform for both sets, at the test-time size and crop where the config has them (as timm's validate.py)",
    }[protocol]
