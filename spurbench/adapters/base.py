"""The model contract every adapter family implements.

An adapter splits a classifier at its last linear layer (timm's
``forward_head(pre_logits=True)`` / ``get_classifier()`` contract), so that

    logits(x) == features(x) @ W.T + b        (exactly: logits is computed this way)

holds for every family. SpuFix and the one-pass cached evaluation rely on it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from PIL import Image


@dataclass(frozen=True)
class ModelCard:
    """Facts about one set of weights, copied into every result file."""

    name: str  # full name including the family prefix, e.g. "timm:resnet18.a1_in1k"
    family: str  # "timm", "open_clip", "hf", "planted", or a plugin's family
    weights_revision: str | None  # pretrained tag / Hub revision / checkpoint sha256; None for random weights
    label_space: str  # "imagenet-1k", "imagenet-21k-google", "imagenet-21k", or a benchmark's own, e.g. "planted"
    num_classes: int
    num_params: int
    # timm-style data config: input_size (C, H, W), interpolation, mean, std, crop_pct, crop_mode
    data_config: dict[str, Any] = field(default_factory=dict)


class ModelAdapter(abc.ABC):
    """Base class of all model families. Subclasses set ``family`` and implement the abstract members.

    Constructor signature every family accepts: ``Adapter(spec, *, checkpoint=None, pretrained=True)``
    where ``spec`` is the part of the model name after ``family:``.
    """

    family: ClassVar[str]
    card: ModelCard

    @classmethod
    def check_spec(cls, spec: str) -> None:
        """Raise UnknownNameError for a spec this family cannot build, cheaply and before any loading.

        Sweeps call it for every model up front, so a typo fails in a second, not after an hour.
        """

    # ---- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.card.name

    @property
    def label_space(self) -> str:
        return self.card.label_space

    @property
    def num_classes(self) -> int:
        return self.card.num_classes

    @property
    def data_config(self) -> dict[str, Any]:
        return dict(self.card.data_config)

    # ---- preprocessing --------------------------------------------------------------------
    @property
    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """The model's own eval transform (PIL -> normalised CHW tensor), from its data config."""
        from spurbench.preprocessing import model_transform

        return model_transform(self.data_config)

    # ---- the split forward ------------------------------------------------------------------
    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the final linear layer, shape [B, D]."""

    @property
    @abc.abstractmethod
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The final linear layer as (W [C, D], b [C])."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.head
        return torch.nn.functional.linear(self.features(x), weight, bias)

    # ---- device / mode ----------------------------------------------------------------------
    @abc.abstractmethod
    def to(self, device: str | torch.device) -> "ModelAdapter":
        """Move all weights to ``device``, return self."""

    @property
    def class_names(self) -> list[str] | None:
        """Human-readable class names of the label space, if known."""
        return None
