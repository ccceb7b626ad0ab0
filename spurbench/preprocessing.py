"""Image transforms under a benchmark's evaluation protocol (``spurbench.protocols.EvalProtocol``).

A fixed protocol (e.g. a benchmark's ``paper``) resizes each role's short side to ``size / crop_pct``
with its interpolation and centre-crops ``size``; a model-transform protocol (``model``) uses each
model's own timm eval transform. The size rule, crop and normalisation come from the protocol.

Input size ``test``: the weights' *test* size where their config has one (``test_input_size``, e.g.
288 px for ``resnet50.a1_in1k``, trained at 224 px), else ``input_size``. Neuhaus et al.'s
evaluation code does this (``dataset/spurious_score.py``: ``test_input_size`` if the pretrained config has
it), and so does timm's ``validate.py`` by default (``use_test_size=not --use-train-size``), which
also takes ``test_crop_pct``. ``train``: the config's ``input_size`` and ``crop_pct``, as
``timm.data.resolve_data_config({}, model)`` gives them.

The forward pass's data path uses :func:`pixel_transform`: the same steps up to uint8 pixels; the
division by 255 and the mean/std step run on the model's device (:func:`normalize_on_device`),
bit-identical to ``ToTensor`` + ``Normalize`` on the CPU (both are x / 255, then (x - mean) / std in
float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from PIL import Image
from torchvision import transforms as T

from spurbench.errors import SpurbenchError
from spurbench.files import plain
from spurbench.protocols import IMAGENET_MEAN, IMAGENET_STD, MODEL_TRANSFORM, PROTOCOL_NAMES, EvalProtocol, Geometry

Role = Literal["positive", "negative"]


def check_protocol(protocol: str) -> None:
    """One-line SpurbenchError for a protocol name no benchmark may declare."""
    if protocol not in PROTOCOL_NAMES:
        raise SpurbenchError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOL_NAMES)}")


def eval_data_config(data_config: dict[str, Any], protocol: EvalProtocol) -> dict[str, Any]:
    """The data config a protocol evaluates with: its size rule's input size, (model transforms) its
    crop rule's crop_pct, and its normalisation's mean/std (see the module docstring)."""
    config = dict(data_config)
    if isinstance(protocol.size, int):
        config["input_size"] = (3, protocol.size, protocol.size)
    elif protocol.size == "test" and config.get("test_input_size"):
        config["input_size"] = tuple(config["test_input_size"])
    if protocol.transform == "model" and protocol.model_crop == "test" and config.get("test_crop_pct"):
        config["crop_pct"] = config["test_crop_pct"]
    if protocol.normalization == "imagenet":
        config["mean"], config["std"] = IMAGENET_MEAN, IMAGENET_STD
    return config


def role_geometry(data_config: dict[str, Any], protocol: EvalProtocol, role: Role) -> dict[str, Any]:
    """What an image of this role is turned into: ``input_size`` [C, H, W], the ``crop_pct`` of its
    centre crop (1.0: the resized image is the input) and the resize's ``interpolation``. Recorded in
    every result file."""
    config = eval_data_config(data_config, protocol)
    if protocol.transform == "model":
        crop_pct, interpolation = float(config.get("crop_pct", 1.0)), str(config.get("interpolation", "bilinear"))
    else:
        geometry = _role(protocol, role)
        crop_pct, interpolation = geometry.crop_pct, geometry.interpolation
    return {"input_size": [int(v) for v in config["input_size"]], "crop_pct": crop_pct, "interpolation": interpolation}


def _role(protocol: EvalProtocol, role: Role) -> Geometry:
    geometry = protocol.positive if role == "positive" else protocol.negative
    if geometry is None:  # (the positive one is always stated: EvalProtocol's validator)
        raise SpurbenchError(f"protocol {protocol.name!r} ({protocol.by}) states no geometry for {role} images, and the benchmark has some")
    return geometry


def model_transform(data_config: dict[str, Any], normalize: bool = True, protocol: EvalProtocol = MODEL_TRANSFORM) -> T.Compose:
    """timm's eval transform (a ``Compose`` of its steps) for this data config under a model-transform protocol (default: at the
    test-time size, as timm's validate.py uses it); ``normalize=False``: without the mean/std step."""
    config = eval_data_config(data_config, protocol)
    config = {k: config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode") if k in config}
    if not normalize:
        config.update(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    # lazy: timm's import costs about 0.5 s of every process's start, and only timm's models need it
    from timm.data import create_transform

    return create_transform(**config, is_training=False)


def normalizer(config: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The mean/std step alone, of an ``eval_data_config``: what a views benchmark applies after
    rendering its views."""
    return T.Normalize(mean=config["mean"], std=config["std"])


def _to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def build_transform(
    data_config: dict[str, Any], protocol: EvalProtocol, role: Role, normalize: bool = True
) -> Callable[[Image.Image], torch.Tensor]:
    """Transform for one image role ("positive" = class images, "negative" = spurious-only images);
    ``normalize=False`` stops before the mean/std step (values in [0, 1], see :func:`normalizer`)."""
    if protocol.transform == "model":
        return T.Compose([_to_rgb, model_transform(data_config, normalize, protocol)])
    config = eval_data_config(data_config, protocol)
    steps = _fixed_steps(int(config["input_size"][-1]), _role(protocol, role))
    return T.Compose([_to_rgb, *steps, T.ToTensor(), *([normalizer(config)] if normalize else [])])


def _fixed_steps(size: int, geometry: Geometry) -> list[Callable]:
    # With crop_pct 1.0 the CenterCrop is a no-op for square images (the authors' data ships square
    # spurious-only images); it only keeps batches stackable for odd local data.
    mode = T.InterpolationMode(geometry.interpolation)
    return [T.Resize(math.floor(size / geometry.crop_pct), interpolation=mode), T.CenterCrop(size)]


def pixel_transform(data_config: dict[str, Any], protocol: EvalProtocol, role: Role) -> Callable[[Image.Image], torch.Tensor]:
    """:func:`build_transform` up to the pixels: PIL -> uint8 [3, H, W] (``PILToTensor``, no scaling, no
    mean/std), what the loader ships and the pixel cache stores; :func:`normalize_on_device` finishes it."""
    if protocol.transform == "fixed":
        size = int(eval_data_config(data_config, protocol)["input_size"][-1])
        return T.Compose([_to_rgb, *_fixed_steps(size, _role(protocol, role)), T.PILToTensor()])
    steps = list(model_transform(data_config, normalize=False, protocol=protocol).transforms)
    # timm's eval transform is PIL resize/crop steps, then (Maybe)ToTensor, then Normalize: keep the
    # PIL steps; anything else would make the uint8 split wrong, so it is refused rather than guessed.
    cut = next((i for i, step in enumerate(steps) if type(step).__name__ in ("ToTensor", "MaybeToTensor")), None)
    if cut is None or not all(isinstance(step, T.Normalize) for step in steps[cut + 1 :]):
        raise SpurbenchError(
            f"timm's eval transform {[type(s).__name__ for s in steps]} does not end in ToTensor, Normalize; cannot ship it as uint8"
        )
    return T.Compose([_to_rgb, *steps[:cut], T.PILToTensor()])


def pixel_geometry(data_config: dict[str, Any], protocol: EvalProtocol, role: Role) -> dict[str, Any]:
    """Everything :func:`pixel_transform` depends on, for the pixel cache's key. Mean and std are not in
    it: the pixels are stored before normalisation, so models that differ only there share them."""
    config = eval_data_config(data_config, protocol)
    if protocol.transform == "model":
        return {"transform": "model", **{k: plain(config.get(k)) for k in ("input_size", "interpolation", "crop_pct", "crop_mode")}}
    geometry = _role(protocol, role)
    size = int(config["input_size"][-1])
    return {
        "transform": "fixed",
        "resize": math.floor(size / geometry.crop_pct),
        "crop": size,
        "interpolation": geometry.interpolation,
    }


def normalize_on_device(x: torch.Tensor, config: dict[str, Any]) -> torch.Tensor:
    """uint8 pixels [B, 3, H, W] (on the model's device) -> the model's float32 input: x / 255, then
    (x - mean) / std of an ``eval_data_config``, the same float32 operations as ``ToTensor`` +
    ``Normalize``, batched."""
    mean = torch.tensor(config["mean"], dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(config["std"], dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return x.float().div(255).sub_(mean).div_(std)
