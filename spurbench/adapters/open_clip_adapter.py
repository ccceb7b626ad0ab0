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

import json
import os
from typing import Any, Callable, Sequence

import torch

from spurbench.adapters._common import (
    hub_commit,
    raise_if_weights_unavailable,
    read_safetensors,
    short_list,
)
from spurbench.adapters.base import ModelAdapter, ModelCard
from spurbench.cache import atomic_path, cache_dir, content_digest, stable_hash
from spurbench.errors import SpurbenchError, UnknownNameError
from spurbench.registry import suggest

# open_clip resize_mode -> timm crop_mode, all with crop_pct 1.0 (open_clip's eval transforms never zoom).
_CROP_MODES = {"shortest": "center", "squash": "squash", "longest": "border"}
_NO_WEIGHTS = ("", "none")


def template_strings(templates: Sequence[str | Callable[[str], str]]) -> tuple[str, ...]:
    """open_clip's templates are lambdas; calling each with "{}" turns it into a format string."""
    return tuple(t if isinstance(t, str) else t("{}") for t in templates)


def _parse_spec(spec: str, needs_weights: bool) -> tuple[str, str | None]:
    """(model name for open_clip, pretrained tag or None), with did-you-mean errors."""
    import open_clip

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
        raise UnknownNameError(f"open_clip architecture {arch!r} has no pretrained tag {tag!r}.{suggest(tag, tags)} Tags: {short_list(tags)}.")
    return arch, tag


def _hub_revision(model_name: str, tag: str | None) -> str:
    """'TAG hf-hub:REPO@COMMIT' for weights served from the Hub, else the tag (or the name)."""
    import open_clip

    default_files = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if tag is None:
        if not model_name.startswith("hf-hub:"):
            return model_name
        repo = model_name.removeprefix("hf-hub:")
        return f"{model_name}@{hub_commit(repo, default_files) or 'main'}"
    hf_hub = open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub", "")
    if not hf_hub:
        return tag
    repo, filename = os.path.split(hf_hub)  # "org/name/" (trailing slash) means open_clip's default file
    return f"{tag} hf-hub:{repo}@{hub_commit(repo, [filename] if filename else default_files) or 'main'}"


class OpenClipAdapter(ModelAdapter):
    family = "open_clip"

    def __init__(
        self,
        spec: str,
        *,
        checkpoint: str | None = None,
        pretrained: bool = True,
        classnames: Sequence[str] | None = None,
        templates: Sequence[str | Callable[[str], str]] | None = None,
    ):
        import open_clip

        self.spec = spec
        from_tag = pretrained and checkpoint is None
        model_name, tag = _parse_spec(spec, needs_weights=from_tag)
        # Weights trained with QuickGELU must run with it; open_clip 3 only warns about a mismatch.
        quick_gelu = bool(tag and open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu", False))
        try:
            model = open_clip.create_model(
                model_name,
                pretrained=tag if from_tag else None,
                load_weights=from_tag,
                force_quick_gelu=quick_gelu,
            )
        except Exception as exc:
            raise_if_weights_unavailable(exc, f"open_clip model {spec!r}")
            raise
        if checkpoint is not None:
            read_safetensors(checkpoint)  # existence / format checks with one-line errors
            try:
                open_clip.load_checkpoint(model, checkpoint, strict=True)
            except RuntimeError as exc:
                raise SpurbenchError(f"checkpoint {checkpoint!r} does not fit open_clip architecture {model_name!r}: {' '.join(str(exc).split())[:300]}") from exc
            weights_revision: str | None = content_digest(checkpoint)
        elif from_tag:
            weights_revision = _hub_revision(model_name, tag)
        else:
            weights_revision = None
        self.model = model.eval()
        self.model_name = model_name
        self.tokenizer = open_clip.get_tokenizer(model_name)

        self.classnames = tuple(classnames if classnames is not None else open_clip.IMAGENET_CLASSNAMES)
        self.templates = template_strings(templates if templates is not None else open_clip.OPENAI_IMAGENET_TEMPLATES)
        is_imagenet = self.classnames == tuple(open_clip.IMAGENET_CLASSNAMES)
        # Only real weights give a text head worth keeping; random models would just litter the cache.
        self._cache_key: str | None = None
        if weights_revision is not None:
            self._cache_key = stable_hash(
                {
                    "arch": model_name,
                    "pretrained": weights_revision,  # tag + Hub commit, or the checkpoint's sha256
                    "templates": self.templates,
                    "classnames": self.classnames,
                    "open_clip": open_clip.__version__,
                }
            )
        self._text_embeddings: torch.Tensor | None = None

        self.card = ModelCard(
            name=f"open_clip:{spec}",
            family=self.family,
            weights_revision=weights_revision,
            label_space="imagenet-1k" if is_imagenet else f"open_clip-{len(self.classnames)}",
            num_classes=len(self.classnames),
            num_params=sum(p.numel() for p in self.model.parameters()),
            data_config=self._data_config(),
        )

    def _data_config(self) -> dict[str, Any]:
        import open_clip
        from open_clip.utils import to_2tuple

        cfg = open_clip.get_model_preprocess_cfg(self.model)
        resize_mode = cfg.get("resize_mode", "shortest")
        return {
            "input_size": (3, *(int(s) for s in to_2tuple(cfg["size"]))),
            "interpolation": cfg.get("interpolation", "bicubic"),
            "mean": tuple(float(v) for v in cfg["mean"]),
            "std": tuple(float(v) for v in cfg["std"]),
            "crop_pct": 1.0,
            "crop_mode": _CROP_MODES.get(resize_mode, "center"),
        }

    # ---- zero-shot head ---------------------------------------------------------------------
    def text_embeddings(self) -> torch.Tensor:
        """[C, D] normalised class embeddings (before the logit scale); built once, cached on disk for real weights."""
        if self._text_embeddings is not None:
            return self._text_embeddings
        device = self.model.logit_scale.device
        path = None
        if self._cache_key is not None:
            stem = self.model_name.replace("/", "_").replace(":", "_")
            path = cache_dir("text_heads") / f"{stem}-{self._cache_key}.safetensors"
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            embeddings = load_file(str(path))["text_embeddings"].to(device)
        else:
            import open_clip

            embeddings = open_clip.build_zero_shot_classifier(
                self.model, self.tokenizer, self.classnames, self.templates, num_classes_per_batch=10, device=device
            ).T.contiguous()
            if path is not None:
                from safetensors.torch import save_file

                metadata = {"arch": self.model_name, "templates": json.dumps(self.templates), "num_classes": str(len(self.classnames))}
                with atomic_path(path) as tmp:  # a concurrent reader never sees half a file
                    save_file({"text_embeddings": embeddings.float().cpu()}, str(tmp), metadata=metadata)
        self._text_embeddings = embeddings
        return embeddings

    @property
    def head(self) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.text_embeddings()
        scale = self.model.logit_scale.detach().exp()
        weight = (scale * embeddings.to(scale.dtype)).contiguous()
        bias = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
        if getattr(self.model, "logit_bias", None) is not None:
            bias = bias + self.model.logit_bias.detach().reshape(())  # SigLIP's learnt bias; CLIP has none
        return weight, bias

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(x, normalize=True)

    def to(self, device: str | torch.device) -> "OpenClipAdapter":
        self.model.to(device)
        if self._text_embeddings is not None:
            self._text_embeddings = self._text_embeddings.to(device)
        return self

    @property
    def class_names(self) -> list[str] | None:
        return list(self.classnames)
