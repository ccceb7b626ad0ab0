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

The forward pass's data path uses :func:`pixel_transform`: the same steps up to uint8 pixels; the
division by 255 and the mean/std step run on the model's device (:func:`normalize_on_device`),
bit-identical to ``ToTensor`` + ``Normalize`` on the CPU (both are x / 255, then (x - mean) / std in
float32).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from PIL import Image
from timm.data import create_transform
from torchvision import transforms as T

from spurbench.errors import SpurbenchError
from spurbench.files import plain

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
    # Negatives: upstream resizes the short side only. The CenterCrop is a no-op for square images (the
    # upstream benchmark ships square images); it only keeps batches stackable for odd local data.
    steps = _paper_steps(size, role, positive_crop_pct, interpolation)
    return T.Compose([_to_rgb, *steps, T.ToTensor(), *([T.Normalize(mean=data_config["mean"], std=data_config["std"])] if normalize else [])])


def _paper_steps(size: int, role: Role, positive_crop_pct: float, interpolation: str | None) -> list[Callable]:
    if role == "negative":
        return [T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size)]
    mode = T.InterpolationMode(interpolation) if interpolation else T.InterpolationMode.BICUBIC
    return [T.Resize(int(math.floor(size / positive_crop_pct)), interpolation=mode), T.CenterCrop(size)]


def pixel_transform(
    data_config: dict[str, Any], protocol: str, role: Role, positive_crop_pct: float = 224 / 256, interpolation: str | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """:func:`build_transform` up to the pixels: PIL -> uint8 [3, H, W] (``PILToTensor``, no scaling, no
    mean/std), what the loader ships and the pixel cache stores; :func:`normalize_on_device` finishes it."""
    check_protocol(protocol)
    if protocol == "paper":
        size = int(eval_data_config(data_config, protocol)["input_size"][-1])
        return T.Compose([_to_rgb, *_paper_steps(size, role, positive_crop_pct, interpolation), T.PILToTensor()])
    steps = list(model_transform(data_config, normalize=False).transforms)
    # timm's eval transform is PIL resize/crop steps, then (Maybe)ToTensor, then Normalize: keep the
    # PIL steps; anything else would make the uint8 split wrong, so it is refused rather than guessed.
    cut = next((i for i, step in enumerate(steps) if type(step).__name__ in ("ToTensor", "MaybeToTensor")), None)
    if cut is None or not all(isinstance(step, T.Normalize) for step in steps[cut + 1 :]):
        raise SpurbenchError(f"timm's eval transform {[type(s).__name__ for s in steps]} does not end in ToTensor, Normalize; cannot ship it as uint8")
    return T.Compose([_to_rgb, *steps[:cut], T.PILToTensor()])


def pixel_geometry(data_config: dict[str, Any], protocol: str, role: Role, positive_crop_pct: float = 224 / 256, interpolation: str | None = None) -> dict[str, Any]:
    """Everything :func:`pixel_transform` depends on, for the pixel cache's key. Mean and std are not in
    it: the pixels are stored before normalisation, so models that differ only there share them."""
    check_protocol(protocol)
    config = eval_data_config(data_config, protocol)
    if protocol == "model":
        return {"protocol": "model", **{k: plain(config.get(k)) for k in ("input_size", "interpolation", "crop_pct", "crop_mode")}}
    size = int(config["input_size"][-1])
    if role == "negative":
        return {"protocol": "paper", "role": role, "resize": size, "crop": size, "interpolation": "bicubic"}
    return {"protocol": "paper", "role": role, "resize": int(math.floor(size / positive_crop_pct)), "crop": size, "interpolation": interpolation or "bicubic"}


def normalize_on_device(x: torch.Tensor, data_config: dict[str, Any]) -> torch.Tensor:
    """uint8 pixels [B, 3, H, W] (on the model's device) -> the model's float32 input: x / 255, then
    (x - mean) / std, the same float32 operations as ``ToTensor`` + ``Normalize``, batched."""
    mean = torch.tensor(data_config["mean"], dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.float().div(255).sub_(mean).div_(std)


def describe(protocol: str) -> str:
    return {
        "paper": "the authors' evaluation: the weights' test_input_size if their config has one, else input_size; negatives: bicubic resize of the short side to that size, no crop; positives: bicubic resize to 256/224 x size, center crop; model mean/std",
        "model": "each model's own timm eval transform for both sets, at the test-time size and crop where the config has them (as timm's validate.py)",
    }[protocol]
