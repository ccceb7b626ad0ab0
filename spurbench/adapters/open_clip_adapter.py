"""open_clip models as zero-shot linear classifiers: ``open_clip:ARCH/PRETRAINED``.

Examples: ``open_clip:ViT-B-32/laion2b_s34b_b79k``, ``open_clip:hf-hub:ORG/REPO``.
With random weights (tests) the spec may be ``ARCH`` or ``ARCH/none``.

The zero-shot head is open_clip's own construction (``build_zero_shot_classifier``):
every class name through every prompt template, text embeddings L2-normalised,
averaged per class and re-normalised; then

    W = logit_scale.exp() * text_embeddings,   b = logit_bias (0 for CLIP)
    features(x) = encode_image(x, normalize=True)

so ``logits == features @ W.T + b`` is exactly CLIP's image-text logit. Templates are
stored as format strings, so they hash into the text-head cache key and can be recorded.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import open_clip
import torch
from open_clip.utils import to_2tuple
from safetensors.torch import load_file, save_file

from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.adapters.common import read_safetensors, short_list, timm_cam_layers, tokens_to_grid
from spurbench.cache import content_digest, make_cache_dir
from spurbench.errors import SpurbenchError, UnknownNameError
from spurbench.files import atomic_path, slug, stable_hash
from spurbench.hub import cached_commit, weights_from_hub
from spurbench.registry import suggest

# open_clip resize_mode -> timm crop_mode, all with crop_pct 1.0 (open_clip's eval transforms never zoom).
_CROP_MODES = {"shortest": "center", "squash": "squash", "longest": "border"}
_NO_WEIGHTS = ("", "none")


def template_strings(templates: Sequence[str | Callable[[str], str]]) -> tuple[str, ...]:
    """open_clip's templates are lambdas; calling each with "{}" turns it into a format string."""
    return tuple(t if isinstance(t, str) else t("{}") for t in templates)


def _parse_spec(spec: str, needs_weights: bool) -> tuple[str, str | None]:
    """(model name for open_clip, pretrained tag or None), with did-you-mean errors."""
    if spec.startswith(("hf-hub:", "local-dir:")):
        return spec, None  # config and weights come from the repo / folder itself
    arch, _, tag = spec.partition("/")
    if arch not in open_clip.list_models():
        raise UnknownNameError(f"unknown open_clip architecture {arch!r}.{suggest(arch, open_clip.list_models())}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag.lower() in _NO_WEIGHTS:
        if needs_weights:
            raise UnknownNameError(f"open_clip name {spec!r} needs a pretrained tag: ARCH/PRETRAINED. Tags for {arch}: {short_list(tags)}.")
        return arch, None
    if not open_clip.is_pretrained_cfg(arch, tag):
        raise UnknownNameError(
            f"open_clip architecture {arch!r} has no pretrained tag {tag!r}.{suggest(tag, tags)} Tags: {short_list(tags)}."
        )
    return arch, tag


def _hub_revision(model_name: str, tag: str | None) -> str:
    """'TAG hf-hub:REPO@COMMIT' for weights served from the Hub, else the tag (or the name)."""
    default_files = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if tag is None:
        if not model_name.startswith("hf-hub:"):
            return model_name
        repo = model_name.removeprefix("hf-hub:")
        return f"{model_name}@{cached_commit(repo, default_files) or 'main'}"
    hf_hub = open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub", "")
    if not hf_hub:
        return tag
    repo, filename = os.path.split(hf_hub)  # "org/name/" (trailing slash) means open_clip's default file
    return f"{tag} hf-hub:{repo}@{cached_commit(repo, [filename] if filename else default_files) or 'main'}"


# What open_clip.create_model builds (it is annotated nn.Module, whose attributes type checkers read as
# Tensor | Module; open_clip ships no type information of its own, so these stand for its classes).
OpenClipModel: TypeAlias = open_clip.CLIP | open_clip.CustomTextCLIP | open_clip.CoCa


def _data_config(model: OpenClipModel) -> dict[str, Any]:
    cfg = open_clip.get_model_preprocess_cfg(model)
    resize_mode = cfg.get("resize_mode", "shortest")
    return {
        "input_size": (3, *(int(s) for s in to_2tuple(cfg["size"]))),
        "interpolation": cfg.get("interpolation", "bicubic"),
        "mean": tuple(float(v) for v in cfg["mean"]),
        "std": tuple(float(v) for v in cfg["std"]),
        "crop_pct": 1.0,
        "crop_mode": _CROP_MODES.get(resize_mode, "center"),
    }


class OpenClipAdapter(ModelAdapter):
    """Build it with :meth:`load`, which also encodes the zero-shot head (an explicit, reported step)."""

    family = "open_clip"

    def __init__(
        self,
        spec: str,
        model: OpenClipModel,
        model_name: str,
        tokenizer: Any,
        weights_revision: str | None,
        classnames: Sequence[str],
        templates: Sequence[str],
    ):
        self.spec, self.model, self.model_name, self.tokenizer = spec, model.eval(), model_name, tokenizer
        self.classnames, self.templates = tuple(classnames), tuple(templates)
        self._text_embeddings: torch.Tensor | None = None
        is_imagenet = self.classnames == tuple(open_clip.IMAGENET_CLASSNAMES)
        self.card = ModelCard(
            name=f"open_clip:{spec}",
            family=self.family,
            weights_revision=weights_revision,
            label_space="imagenet-1k" if is_imagenet else f"open_clip-{len(self.classnames)}",
            num_classes=len(self.classnames),
            num_params=sum(p.numel() for p in self.model.parameters()),
            data_config=_data_config(self.model),
        )

    @classmethod
    def load(
        cls,
        spec: str,
        *,
        checkpoint: str | None = None,
        pretrained: bool = True,
        classnames: Sequence[str] | None = None,
        templates: Sequence[str | Callable[[str], str]] | None = None,
    ) -> OpenClipAdapter:
        from_tag = pretrained and checkpoint is None
        model_name, tag = _parse_spec(spec, needs_weights=from_tag)
        # Weights trained with QuickGELU must run with it; open_clip 3 only warns about a mismatch.
        quick_gelu = bool(tag and open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu", False))
        with weights_from_hub(f"open_clip model {spec!r}") if from_tag else contextlib.nullcontext():
            model = open_clip.create_model(
                model_name, pretrained=tag if from_tag else None, load_weights=from_tag, force_quick_gelu=quick_gelu
            )
        weights_revision: str | None = None
        if checkpoint is not None:
            read_safetensors(checkpoint)  # existence / format checks with one-line errors
            try:
                open_clip.load_checkpoint(model, checkpoint, strict=True)
            except RuntimeError as exc:
                raise SpurbenchError(
                    f"checkpoint {checkpoint!r} does not fit open_clip architecture {model_name!r}: {' '.join(str(exc).split())[:300]}"
                ) from exc
            weights_revision = content_digest(checkpoint)
        elif from_tag:
            weights_revision = _hub_revision(model_name, tag)
        names = classnames if classnames is not None else open_clip.IMAGENET_CLASSNAMES
        adapter = cls(
            spec,
            model,
            model_name,
            open_clip.get_tokenizer(model_name),
            weights_revision,
            names,
            template_strings(templates if templates is not None else open_clip.OPENAI_IMAGENET_TEMPLATES),
        )
        adapter.build_text_head()
        return adapter

    @classmethod
    def list_names(cls, pattern: str = "*") -> list[str]:
        """``open_clip:ARCH/TAG`` for every pretrained pair open_clip knows (``open_clip.list_pretrained``)."""
        names = [f"open_clip:{arch}/{tag}" for arch, tag in open_clip.list_pretrained()]
        return [n for n in names if fnmatch.fnmatch(n.removeprefix("open_clip:"), pattern) or fnmatch.fnmatch(n, pattern)]

    # ---- zero-shot head ---------------------------------------------------------------------
    def text_head_path(self) -> Path | None:
        """Where the encoded head of real weights is cached (keyed by weights, templates, class names,
        open_clip version); None for random weights, whose heads would only litter the cache."""
        if self.card.weights_revision is None:
            return None
        key = stable_hash(
            {
                "arch": self.model_name,
                "pretrained": self.card.weights_revision,
                "templates": self.templates,
                "classnames": self.classnames,
                "open_clip": open_clip.__version__,
            }
        )
        return make_cache_dir("text_heads") / f"{slug(self.model_name)}-{key}.safetensors"

    def build_text_head(self) -> torch.Tensor:
        """Encode every class name through every prompt template (open_clip's ``build_zero_shot_classifier``),
        or read the cached result; [C, D] normalised class embeddings, before the logit scale."""
        device = self.model.logit_scale.device
        path = self.text_head_path()
        if path is not None and path.is_file():
            embeddings = load_file(str(path))["text_embeddings"].to(device)
        else:
            embeddings = open_clip.build_zero_shot_classifier(
                self.model, self.tokenizer, self.classnames, self.templates, num_classes_per_batch=10, device=device, use_tqdm=True
            ).T.contiguous()
            if path is not None:
                metadata = {"arch": self.model_name, "templates": json.dumps(self.templates), "num_classes": str(len(self.classnames))}
                with atomic_path(path) as tmp:  # a concurrent reader never sees half a file
                    save_file({"text_embeddings": embeddings.float().cpu()}, str(tmp), metadata=metadata)
        self._text_embeddings = embeddings
        return embeddings

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._text_embeddings is None:
            raise SpurbenchError(f"{self.name}: its zero-shot head is not built yet; call build_text_head() (load() does)")
        scale = self.model.logit_scale.detach().exp()
        weight = (scale * self._text_embeddings.to(scale.dtype)).contiguous()
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
        if getattr(self.model, "logit_bias", None) is not None:
            bias = bias + self.model.logit_bias.detach().reshape(())  # SigLIP's learnt bias; CLIP has none
        return weight, bias

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, normalize=True)

    def cam_target_layers(self) -> tuple[list[torch.nn.Module], Callable[[torch.Tensor], torch.Tensor] | None]:
        """The image tower's last block: for a ViT the first norm of its last residual block (tokens on
        the patch grid, the class token dropped; the block's output would get no gradient under
        class-token pooling, see ``timm_cam_layers``), a ModifiedResNet's ``layer4``, a timm trunk's
        last feature stage."""
        visual = self.model.visual
        if hasattr(visual, "transformer") and hasattr(visual, "grid_size"):
            rows, cols = to_2tuple(visual.grid_size)
            blocks = visual.transformer.resblocks
            # everything before the rows x cols patch tokens is a prefix (the class token)
            prefix = int(visual.positional_embedding.shape[0]) - rows * cols
            return [blocks[-1].ln_1], tokens_to_grid(prefix, (rows, cols), batch_first=getattr(visual.transformer, "batch_first", True))
        if hasattr(visual, "layer4"):
            return [visual.layer4], None
        if hasattr(visual, "trunk"):
            return timm_cam_layers(visual.trunk, self.name)
        raise SpurbenchError(f"{self.name}: no GradCAM layer known for its image tower ({type(visual).__name__})")

    def to(self, device: str | torch.device) -> OpenClipAdapter:
        self.model.to(device)
        if self._text_embeddings is not None:
            self._text_embeddings = self._text_embeddings.to(device)
        return self

    @property
    def class_names(self) -> list[str] | None:
        return list(self.classnames)
