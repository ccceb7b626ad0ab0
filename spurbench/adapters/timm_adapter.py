"""timm models: ``timm:ARCH[.TAG]``, e.g. ``timm:resnet50.a1_in1k``.

timm's own split-forward contract gives the adapter split directly:
``features = forward_head(forward_features(x), pre_logits=True)`` and the head is
``get_classifier()``. Pretrained weights come from timm's normal Hub path (the
local Hugging Face cache when offline); ``checkpoint=FILE.safetensors`` loads local
weights into the architecture instead.

"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import timm
import torch
from timm.data import infer_imagenet_subset, resolve_data_config
from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg, split_model_name_tag
from timm.models._hub import hf_split
from torch import nn

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.adapters.common import (
    LinearClassifierMixin,
    checkpoint_label_space,
    load_checkpoint_into,
    read_safetensors,
    short_list,
    strip_wrapper_prefix,
    timm_cam_layers,
)
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError, UnknownNameError
from spurbench.files import plain
from spurbench.hub import cached_commit, weights_from_hub
from spurbench.label_spaces import TIMM_SUBSET_TO_SPACE, class_names
from spurbench.registry import suggest

if TYPE_CHECKING:

    class TimmModel(nn.Module):
        """What every timm model has beside nn.Module's (timm annotates ``create_model`` as a plain
        nn.Module, whose other attributes type checkers read as Tensor | Module)."""

        pretrained_cfg: dict[str, Any]
        num_classes: int

        def get_classifier(self) -> nn.Module: ...
        def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...
        def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


def _create_model(spec: str, **kwargs: Any) -> TimmModel:
    return cast("TimmModel", timm.create_model(spec, **kwargs))


DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
TEST_TIME_KEYS = ("test_input_size", "test_crop_pct")


def timm_data_config(pretrained_cfg: dict[str, Any]) -> dict[str, Any]:
    """The card's data config from a timm pretrained config: timm's resolved train-time config plus the
    test-time size and crop where the config has them. Which one an evaluation uses is the protocol's
    choice (``spurbench.preprocessing.eval_data_config``); both are recorded, so results say which."""
    resolved = resolve_data_config({}, pretrained_cfg=dict(pretrained_cfg))
    config = {k: plain(resolved[k], tuple) for k in DATA_CONFIG_KEYS if k in resolved}
    config.update({k: plain(pretrained_cfg[k], tuple) for k in TEST_TIME_KEYS if pretrained_cfg.get(k)})
    return config


def _check_timm_name(spec: str, needs_weights: bool) -> None:
    """Unknown architecture or tag -> UnknownNameError with suggestions (timm itself gives none)."""
    if spec.startswith(("hf-hub:", "local-dir:")):
        return  # timm resolves these from the Hub / a folder; its own errors apply
    arch, tag = split_model_name_tag(spec)
    if not timm.is_model(arch):
        raise UnknownNameError(f"unknown timm model {arch!r}.{suggest(arch, timm.list_models())}")
    tags = [name.partition(".")[2] for name in get_arch_pretrained_cfgs(arch)]
    if tag and tag not in tags:
        raise UnknownNameError(f"timm model {arch!r} has no pretrained tag {tag!r}.{suggest(tag, tags)} Tags: {short_list(tags)}.")
    if needs_weights:
        cfg = get_pretrained_cfg(spec)
        if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
            raise SpurbenchError(f"timm model {spec!r} has no pretrained weights; pass --checkpoint FILE.safetensors")


def _hub_revision(pretrained_cfg: dict[str, Any]) -> str | None:
    """'TAG hf-hub:REPO@COMMIT' (or the URL file name) for the weights timm loaded."""
    parts = [pretrained_cfg["tag"]] if pretrained_cfg.get("tag") else []
    hub_id = pretrained_cfg.get("hf_hub_id")
    if hub_id:
        repo, revision = hf_split(hub_id)
        filenames = (
            [pretrained_cfg["hf_hub_filename"]] if pretrained_cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
        )
        commit = cached_commit(repo, filenames, revision=revision)
        parts.append(f"hf-hub:{repo}@{commit or revision or 'main'}")
    elif pretrained_cfg.get("url"):
        parts.append(Path(str(pretrained_cfg["url"])).name)
    return " ".join(parts) or None


def _with_checkpoint(spec: str, model: TimmModel, checkpoint: str) -> tuple[TimmModel, str, str | None]:
    """``model`` with the weights of a local safetensors checkpoint, the checkpoint's digest, and the
    label space its metadata names (None: inferred from the head as for any timm model)."""
    state = read_safetensors(checkpoint)
    # A checkpoint may carry a different number of classes than the tag's default (e.g. a 21k head):
    # rebuild the architecture with the checkpoint's head size so it is not silently cut.
    classifier_name = model.pretrained_cfg.get("classifier")
    if isinstance(classifier_name, str):
        head_weight = strip_wrapper_prefix(state, model.state_dict()).get(f"{classifier_name}.weight")
        if head_weight is not None and head_weight.ndim == 2 and head_weight.shape[0] != model.num_classes:
            model = _create_model(spec, pretrained=False, num_classes=int(head_weight.shape[0]))
    load_checkpoint_into(model, state, checkpoint, f"timm architecture {spec!r}")
    return model, content_digest(checkpoint), checkpoint_label_space(checkpoint)


class TimmAdapter(LinearClassifierMixin, ModelAdapter):
    family = "timm"

    @classmethod
    def check_spec(cls, spec: str) -> None:
        _check_timm_name(spec, needs_weights=False)

    model: TimmModel

    def __init__(self, spec: str, model: TimmModel, weights_revision: str | None, label_space: str | None = None):
        self.spec, self.model = spec, model.eval()
        classifier = self.model.get_classifier()
        if not isinstance(classifier, nn.Linear):
            raise SpurbenchError(
                f"timm model {spec!r}: its classifier ({type(classifier).__name__}) is not a linear layer, "
                "so logits cannot be split as features @ W.T + b"
            )
        self._classifier = classifier
        num_classes = classifier.out_features
        subset = infer_imagenet_subset(self.model)
        self.card = ModelCard(
            name=f"timm:{spec}",
            family=self.family,
            weights_revision=weights_revision,
            label_space=label_space or TIMM_SUBSET_TO_SPACE.get(subset or "", f"timm-{num_classes}"),
            num_classes=num_classes,
            num_params=sum(p.numel() for p in self.model.parameters()),
            data_config=timm_data_config(self.model.pretrained_cfg),
        )

    @classmethod
    def load(cls, spec: str, *, checkpoint: str | None = None, pretrained: bool = True) -> TimmAdapter:
        from_hub = pretrained and checkpoint is None
        _check_timm_name(spec, needs_weights=from_hub)
        with weights_from_hub(f"timm model {spec!r}") if from_hub else contextlib.nullcontext():
            model = _create_model(spec, pretrained=from_hub)
        if checkpoint is not None:
            return cls(spec, *_with_checkpoint(spec, model, checkpoint))
        return cls(spec, model, _hub_revision(model.pretrained_cfg) if from_hub else None)

    @classmethod
    def list_names(cls, pattern: str = "*") -> list[str]:
        """Pretrained timm names matching ``pattern`` (``timm.list_models``), with the family prefix."""
        return [f"timm:{name}" for name in timm.list_models(pattern, pretrained=True)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def cam_target_layers(self) -> tuple[list[nn.Module], Callable[[torch.Tensor], torch.Tensor] | None]:
        return timm_cam_layers(self.model, self.name)

    @property
    def class_names(self) -> list[str] | None:
        names = class_names(self.label_space)
        return list(names) if names is not None else None
