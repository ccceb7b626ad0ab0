"""Hugging Face transformers image classifiers: ``hf:ORG/REPO`` (or ``hf:/path/to/saved_dir``).

transformers has no split-forward contract, so the adapter finds the final linear
layer (``model.classifier``, the Linear at the end of a ``Sequential`` classifier, or
else the model's last Linear with ``num_labels`` outputs) and captures its input with a
forward pre-hook. Because that is a heuristic, construction checks on a random batch
that ``model(x).logits == features(x) @ W.T + b`` and refuses the model otherwise.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError
from PIL import Image
from torch import nn

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.adapters.common import LinearClassifierMixin, load_checkpoint_into, read_safetensors
from spurbench.adapters.timm_adapter import timm_data_config
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError, UnknownNameError
from spurbench.hub import cached_commit, exception_chain, raise_if_weights_unavailable, weights_from_hub
from spurbench.label_spaces import imagenet_space

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _size_get(size: Any, key: str) -> int | None:
    # transformers 5 stores sizes as SizeDict, older versions as plain dicts.
    value = size.get(key) if hasattr(size, "get") else getattr(size, key, None)
    return int(value) if value else None


def _interpolation(resample: Any) -> str:
    if isinstance(getattr(resample, "value", None), str):  # torchvision InterpolationMode
        return resample.value
    return Image.Resampling(int(resample)).name.lower()


def _crop_pct(crop: int, resize: int) -> float:
    """crop / resize, nudged down so that timm's floor(crop / crop_pct) gives back ``resize`` exactly."""
    pct = crop / resize
    while math.floor(crop / pct) < resize:
        pct = math.nextafter(pct, 0.0)
    return pct


def hf_data_config(config: Any, processor: Any) -> dict[str, Any]:
    """The card's data config. A timm model wrapped by transformers (``model_type`` ``timm_wrapper``)
    carries timm's own pretrained config: it gets the timm adapter's data config, test-time size
    included, so ``hf:`` and ``timm:`` evaluate the same weights at the same sizes (transformers' own
    TimmWrapperImageProcessor keeps only the train size). Other image processors have one eval size."""
    pretrained_cfg = getattr(config, "pretrained_cfg", None)
    if getattr(config, "model_type", None) == "timm_wrapper" and isinstance(pretrained_cfg, dict):
        return timm_data_config(pretrained_cfg)
    return processor_data_config(processor)


def processor_data_config(processor: Any) -> dict[str, Any]:
    """A timm data config that reproduces a transformers image processor's eval preprocessing."""
    size = getattr(processor, "size", None) or {}
    shortest, height, width = (_size_get(size, k) for k in ("shortest_edge", "height", "width"))
    crop = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    crop_h, crop_w = (_size_get(crop, "height"), _size_get(crop, "width")) if crop else (None, None)
    crop_pct_attr = getattr(processor, "crop_pct", None)
    if crop_h and crop_w:
        input_hw = (crop_h, crop_w)
        if shortest:  # resize the short side, then crop (CLIP / BiT processors)
            crop_pct, crop_mode = _crop_pct(crop_h, shortest), "center"
        elif height:  # resize to a fixed rectangle, then crop
            crop_pct, crop_mode = _crop_pct(crop_h, height), "squash"
        else:
            raise SpurbenchError(
                f"image processor {type(processor).__name__} has a crop without a resize size; cannot express it as a data config"
            )
    elif height and width:
        input_hw, crop_pct, crop_mode = (height, width), 1.0, "squash"
    elif shortest:
        input_hw = (shortest, shortest)
        # ConvNextImageProcessor (also used by HF ResNets): below 384 px resize to shortest/crop_pct and
        # center-crop; from 384 px it warps to a square without cropping.
        if crop_pct_attr and shortest < 384:
            crop_pct, crop_mode = float(crop_pct_attr), "center"
        else:
            crop_pct, crop_mode = 1.0, "squash"
    else:
        raise SpurbenchError(f"image processor {type(processor).__name__} has no usable size ({size}); cannot express it as a data config")

    # HF computes (pixel * rescale_factor [- 1 with rescale_offset] - mean) / std; timm computes
    # (pixel / 255 - mean) / std. With c = rescale_factor * 255 the two agree for mean' = (mean [+ 1]) / c, std' = std / c.
    c = float(processor.rescale_factor) * 255.0 if getattr(processor, "do_rescale", True) else 255.0
    offset = 1.0 if getattr(processor, "rescale_offset", False) else 0.0
    if getattr(processor, "do_normalize", True):
        mean, std = list(processor.image_mean), list(processor.image_std)
    else:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    return {
        "input_size": (3, int(input_hw[0]), int(input_hw[1])),
        "interpolation": _interpolation(getattr(processor, "resample", 2)),
        "mean": tuple((float(m) + offset) / c for m in mean),
        "std": tuple(float(s) / c for s in std),
        "crop_pct": float(crop_pct),
        "crop_mode": crop_mode,
    }


def _find_classifier(model: nn.Module, num_labels: int) -> nn.Linear:
    head = getattr(model, "classifier", None)
    if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
        head = head[-1]  # e.g. ResNet: Sequential(Flatten, Linear)
    if head is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
        head = linears[-1] if linears else None
    if not isinstance(head, nn.Linear) or head.out_features != num_labels:
        found = type(head).__name__ if head is not None else f"no Linear with {num_labels} outputs"
        raise SpurbenchError(
            f"{type(model).__name__}: classifier ({found}) is not a plain linear layer; spurbench needs logits = features @ W.T + b"
        )
    return head


def _weights_revision(spec: str) -> str | None:
    folder = Path(spec)
    if folder.is_dir():
        for name in _WEIGHT_FILES:
            if (folder / name).is_file():
                return content_digest(folder / name)
        return None
    commit = cached_commit(spec, _WEIGHT_FILES)
    return f"hf-hub:{spec}@{commit or 'main'}"


def _raise_load_error(exc: BaseException, spec: str) -> None:
    """One-line errors for what a user can get wrong; returns for anything else (a bug: re-raised as is)."""
    if isinstance(exc, SpurbenchError):
        return  # already one line (weights_from_hub)
    raise_if_weights_unavailable(exc, f"hf model {spec!r}")
    text = " ".join(str(exc).split())
    if any(isinstance(e, (HFValidationError, RepositoryNotFoundError)) for e in exception_chain(exc)):
        raise UnknownNameError(f"hf model {spec!r} is neither a local directory nor a Hugging Face Hub model repo") from exc
    if isinstance(exc, ValueError) and "Unrecognized configuration class" in text:
        raise SpurbenchError(
            f"hf model {spec!r} is not an image classification model (no AutoModelForImageClassification class for its config)"
        ) from exc
    if isinstance(exc, (OSError, ValueError)) and ("Unrecognized" in text or "does not appear to have" in text or "Can't load" in text):
        raise SpurbenchError(f"hf model {spec!r}: {text[:300]}") from exc


class HFAdapter(LinearClassifierMixin, ModelAdapter):
    family = "hf"

    def __init__(self, spec: str, model: nn.Module, config: Any, data_config: dict[str, Any], weights_revision: str | None):
        self.spec, self.model = spec, model.float().eval()  # float32 also where an older transformers ignored dtype=
        num_labels = int(config.num_labels)
        try:
            self._classifier = _find_classifier(self.model, num_labels)
        except SpurbenchError as exc:
            raise SpurbenchError(f"hf model {spec!r}: {exc}") from None
        self._id2label = [str(config.id2label.get(k, k)) for k in range(num_labels)] if getattr(config, "id2label", None) else None
        self.card = ModelCard(
            name=f"hf:{spec}",
            family=self.family,
            weights_revision=weights_revision,
            label_space=imagenet_space(num_labels, "hf"),
            num_classes=num_labels,
            num_params=sum(p.numel() for p in self.model.parameters()),
            data_config=data_config,
        )

    @classmethod
    def load(cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True) -> HFAdapter:
        """Load config, processor and weights, then prove the features/head split on a random batch."""
        try:
            # lazy: transformers is an optional dependency (the [transformers] extra)
            from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
        except ImportError as exc:
            raise SpurbenchError("the hf model family needs transformers: pip install 'spurbench[transformers]'") from exc
        from_hub = pretrained and checkpoint is None
        # a local folder needs no Hub; a repo id is fetched fast and quietly, or not at all, without one
        hub = contextlib.nullcontext() if Path(spec).is_dir() else weights_from_hub(f"hf model {spec!r}")
        try:
            with hub:
                config = AutoConfig.from_pretrained(spec)
                processor = AutoImageProcessor.from_pretrained(spec)
                if from_hub:
                    # float32 regardless of the stored dtype: transformers 5 otherwise keeps e.g. fp16 weights.
                    model = AutoModelForImageClassification.from_pretrained(spec, dtype=torch.float32)
                else:
                    model = AutoModelForImageClassification.from_config(config)
        except Exception as exc:
            _raise_load_error(exc, spec)
            raise
        weights_revision: str | None
        if checkpoint is not None:
            load_checkpoint_into(model, read_safetensors(checkpoint), checkpoint, f"hf architecture {spec!r}")
            weights_revision = content_digest(checkpoint)
        else:
            weights_revision = _weights_revision(spec) if from_hub else None
        adapter = cls(spec, model, config, hf_data_config(config, processor), weights_revision)
        adapter.check_split()
        return adapter

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(classifier input, model logits) of one forward pass."""
        captured: list[torch.Tensor] = []
        handle = self._classifier.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            logits = self.model(pixel_values=x).logits
        finally:
            handle.remove()
        if len(captured) != 1 or captured[0].ndim != 2:
            shapes = [tuple(t.shape) for t in captured]
            raise SpurbenchError(f"hf model {self.spec!r}: the classifier saw inputs {shapes}, not one [batch, features] matrix")
        return captured[0], logits

    def check_split(self) -> None:
        """The classifier was found heuristically: prove ``logits == features @ W.T + b`` on a random batch."""
        x = torch.randn(2, *self.card.data_config["input_size"], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            feats, logits = self._run(x.to(self._classifier.weight.device))
            weight, bias = self.head
            rebuilt = nn.functional.linear(feats, weight, bias)
        if not torch.allclose(rebuilt, logits, rtol=1e-4, atol=1e-4 * (1.0 + logits.abs().max().item())):
            raise SpurbenchError(
                f"hf model {self.spec!r}: its logits are not a linear function of the classifier input; architecture not supported"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    @property
    def class_names(self) -> list[str] | None:
        return list(self._id2label) if self._id2label is not None else None
