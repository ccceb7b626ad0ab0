"""Mask-weighted Gaussian noise (Singla & Feizi, eq. 1): x~ = clamp(x + sigma * (eps ⊙ M), 0, 1).

eps ~ N(0, 1) per pixel and channel, drawn from a generator seeded by the image id alone, so the
noisy views do not depend on batch size, order, worker or device and can be recomputed. One eps per
image serves all its views and noise levels: the conditions then differ only in where the noise goes.
M is the pixel-wise max of the selected soft masks (paper eq. 2), resized to the input when the model
does not take 224 px (the masks' grid). Applied to the preprocessed image before normalisation.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from spurbench.benchmarks.base import BenchmarkImage
from spurbench.benchmarks.salient_imagenet.metrics import CLEAN, VIEW, view_name


def image_noise(image_id: str, shape: Sequence[int]) -> torch.Tensor:
    """The image's eps [3, H, W], float32, from a CPU generator seeded by sha256(image id)."""
    seed = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little") & (2**63 - 1)
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def views_for(kinds: Mapping[int, str], sigmas: Sequence[float]) -> tuple[str, ...]:
    """The views of an image whose masks are those of ``kinds`` (feature -> "core" | "spurious")."""
    views = [CLEAN]
    for sigma in sigmas:
        for kind in ("spurious", "core"):
            if kind in kinds.values():
                views.append(view_name(kind, sigma))
        views += [view_name(f"feature-{f}", sigma) for f in sorted(kinds)]
    return tuple(views)


def _fit(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(mask.shape) == size:
        return mask
    return F.interpolate(mask[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def render(
    image: BenchmarkImage, x: torch.Tensor, masks: Mapping[int, torch.Tensor], kinds: Mapping[int, str], union: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> list[torch.Tensor]:
    """``image.views`` of ``x`` [3, H, W] in [0, 1]; ``masks``: feature -> soft mask [h, w] in [0, 1];
    ``union``: what happens to the selected masks' max before it is fitted to the input (the authors'
    zoom, see the plugin)."""
    size = (x.shape[1], x.shape[2])
    eps = image_noise(image.image_id, x.shape)
    out = []
    for view in image.views:
        if view == CLEAN:
            out.append(x)
            continue
        match = VIEW.match(view)
        if match is None:
            raise ValueError(f"unknown view {view!r}")
        kind, sigma = match.group(1), float(match.group(3))
        chosen = [int(match.group(2))] if match.group(2) is not None else [f for f, k in kinds.items() if k == kind]
        mask = torch.stack([masks[f].float() for f in chosen]).amax(0)
        mask = _fit(union(mask) if union is not None else mask, size)
        out.append((x + sigma * eps * mask[None]).clamp(0.0, 1.0))
    return out


def renderer(
    masks_of: Callable[[BenchmarkImage], Mapping[int, torch.Tensor]], kinds_of: Callable[[BenchmarkImage], Mapping[int, str]], union: Callable[[torch.Tensor], torch.Tensor] | None = None
):
    """A ``Benchmark.render_views`` from where each image's masks and their kinds come from."""

    def render_views(image: BenchmarkImage, x: torch.Tensor) -> list[torch.Tensor]:
        return render(image, x, masks_of(image), kinds_of(image), union)

    return render_views


__all__ = ["image_noise", "render", "renderer", "views_for"]
