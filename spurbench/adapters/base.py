"""The model contract every adapter family implements.

An adapter splits a classifier at its last linear layer (timm's
``forward_head(pre_logits=True)`` / ``get_classifier()`` contract), so that

    logits(x) == features(x) @ W.T + b        (exactly: logits is computed this way)

holds for every family. SpuFix and the one-pass cached evaluation rely on it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from PIL import Image

from spurbench.errors import SpurbenchError
from spurbench.preprocessing import model_transform
from spurbench.results import ModelCard


@dataclass(frozen=True)
class DeclaredModel:
    """What a model's name alone tells before any weights load (no download, no training): enough for a
    benchmark's ``check_model`` to refuse a model it cannot score before that expensive step."""

    name: str
    label_space: str
    num_classes: int


class ModelAdapter(abc.ABC):
    """Base class of all model families. Subclasses set ``family`` and implement the abstract members.

    A family is built with the classmethod ``Family.load(spec, *, checkpoint=None, pretrained=True)``,
    where ``spec`` is the part of the model name after ``family:``: loading weights (or training them)
    is that explicit step. Constructors only store what ``load`` built; properties only read.
    """

    family: ClassVar[str]
    card: ModelCard

    @classmethod
    @abc.abstractmethod
    def load(cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True) -> ModelAdapter:
        """Build the adapter: weights from the family's own source (``pretrained``), from a local
        ``checkpoint``, or random (``pretrained=False``, for tests)."""

    @classmethod
    def declared(cls, spec: str) -> DeclaredModel | None:
        """The label space ``spec`` has whatever its weights, when the name alone tells; None (the
        default) where only loading the model tells."""
        return None

    @classmethod
    def list_names(cls, pattern: str = "*") -> list[str]:
        """Loadable names ``family:spec`` matching a wildcard ``pattern``, for ``spurbench ls``; [] where the
        family cannot enumerate its models (e.g. the Hub offline)."""
        return []

    @classmethod
    def check_spec(cls, spec: str) -> None:
        """Raise UnknownNameError for a spec this family cannot build, cheaply and before any loading.

        Sweeps call it for every model up front, so a typo fails in a second, not after an hour.
        A family that accepts any spec keeps this default.
        """
        return None

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
    def transform(self, image: Image.Image) -> torch.Tensor:
        """The model's own eval preprocessing of one image (PIL -> normalised CHW tensor), from its data config."""
        return model_transform(self.data_config)(image)

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
    def to(self, device: str | torch.device) -> ModelAdapter:
        """Move all weights to ``device``, return self."""

    def set_memory_format(self, memory_format: torch.memory_format) -> ModelAdapter:
        """Put the model's 4-D weights in ``memory_format`` (``torch.channels_last``: what GPU convolutions
        run fastest on; ``torch.contiguous_format``: back), return self. The default converts every
        ``nn.Module`` the adapter holds as an attribute; a family whose modules live elsewhere, or whose
        architecture must not be converted, overrides it."""
        for value in vars(self).values():
            if isinstance(value, torch.nn.Module):
                value.to(memory_format=memory_format)
        return self

    def cam_target_layers(self) -> tuple[list[torch.nn.Module], Callable[[torch.Tensor], torch.Tensor] | None]:
        """The layers GradCAM reads (usually the last spatial block) and, for token-based models, the
        reshape of their tokens into a [B, C, H, W] map (pytorch-grad-cam's ``reshape_transform``)."""
        raise SpurbenchError(f"{self.name}: this model family does not name a GradCAM target layer")

    @property
    def class_names(self) -> list[str] | None:
        """Human-readable class names of the label space, if known."""
        return None
