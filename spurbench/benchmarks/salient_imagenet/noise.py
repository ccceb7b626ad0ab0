"""Mask-weighted Gaussian noise (Singla & Feizi, eq. 1): x~ = clamp(x + sigma * (eps ⊙ M), 0, 1).

eps ~ N(0, 1) per pixel and channel, drawn from a generator seeded by the image id alone, so the
noisy views do not depend on batch size, order, worker or device and can be recomputed (the authors'
code draws it unseeded per batch: the same distribution). One eps per image serves all its views and
noise levels: the conditions then differ only in where the noise goes. M is made from the selected
8-bit masks by the protocol's union rule (:func:`authors_union`: the authors' loader, bit for bit;
:func:`float_union`: the pixel-wise max / 255, paper eq. 2), then resized (bilinear) to the input
when that is not the masks' grid. Applied to the preprocessed image before normalisation. Also here:
the views an image gets (``views_for``) and the checks on noise levels and views, shared by both
Salient plugins.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

from spurbench.benchmarks.base import BenchmarkImage
from spurbench.benchmarks.salient_imagenet.metrics import CLEAN, VIEW, view_name
from spurbench.errors import SpurbenchError
from spurbench.protocols import EvalProtocol


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


def check_sigmas(sigmas: Sequence[float]) -> list[float]:
    """Noise levels: finite, in [0.001, 10], distinct as view names write them (one-line error otherwise)."""
    if any(not (np.isfinite(s) and 0.001 <= s <= 10) for s in sigmas) or len({f"{s:g}" for s in sigmas}) != len(sigmas):
        raise SpurbenchError(
            f"--option sigma: {list(sigmas)}; give distinct noise levels in [0.001, 10], e.g. sigma=0.25 or sigma=[0.25,0.5]"
        )
    return list(sigmas)


def view_sigmas(names: Sequence[str]) -> list[float]:
    """The noise levels of an image's views, in order (ValueError for a name no view has)."""
    sigmas: list[float] = []
    for view in names:
        if view == CLEAN:
            continue
        match = VIEW.match(view)
        if match is None:
            raise ValueError(f"unknown view {view!r}")
        if float(match.group(3)) not in sigmas:
            sigmas.append(float(match.group(3)))
    return sigmas


def check_salient_views(views: Mapping[str, tuple[str, ...]], kinds_of: Mapping[str, Mapping[int, str]] | None = None) -> None:
    """``leaderboard verify``: every image has the views its masks give it, at one list of noise levels
    (at least one) for all images. ``kinds_of``: image id -> feature -> kind, where the benchmark knows
    them; None (a user's layout, not at hand): any core/spurious assignment of the image's features."""
    if not views:
        return
    sigmas = view_sigmas(next(iter(views.values())))
    if not sigmas:
        raise SpurbenchError("images: no noise views (a result must score at least one noise level)")
    for image_id, names in views.items():
        if kinds_of is not None:
            candidates = [views_for(kinds_of.get(image_id, {}), sigmas)]
        else:
            features = sorted({int(m.group(2)) for v in names if (m := VIEW.match(v)) is not None and m.group(2) is not None})
            candidates = (
                [views_for(dict(zip(features, kinds)), sigmas) for kinds in itertools.product(("core", "spurious"), repeat=len(features))]
                if features
                else []
            )
        if names not in candidates:
            expected = (
                f", the benchmark gives it {list(candidates[0])}"
                if len(candidates) == 1
                else " is not what a Salient ImageNet layout gives an image"
            )
            raise SpurbenchError(f"images[{image_id!r}].views: {list(names)}{expected}")


def _fit(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(mask.shape) == size:
        return mask
    return F.interpolate(mask[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


Union = Callable[[Sequence[torch.Tensor]], torch.Tensor]  # the selected masks [h, w] -> M, float32 in [0, 1]


def float_union(masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """The pixel-wise max of the masks in float32 (paper eq. 2), on the masks' own grid; 8-bit masks
    (uint8) are divided by 255 first, float masks are taken as they are."""
    return torch.stack([m.float() / 255 if m.dtype == torch.uint8 else m.float() for m in masks]).amax(0)


# The authors' loader (inspection_utils.py, SalientImageNet.__getitem__) sends the union mask through
# the image's own transform, Resize(256) + CenterCrop(224) (PIL, bilinear), although the masks are
# already on that 224 grid: a 256/224 zoom about the centre.
_AUTHORS_MASK_TRANSFORM = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(224), T.ToTensor()])


def authors_union(masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """M as the authors' loader makes it, to the last bit: the max of mask / 255 in float64 over a zero
    array, times 255 and cast to uint8 (a truncation: 0.9999 -> 0), an 8-bit PIL image again, then the
    image transform on it (the zoom above) and ToTensor's / 255."""
    if any(mask.dtype != torch.uint8 for mask in masks):
        raise TypeError("the authors' mask steps start from the 8-bit masks on disk (uint8)")
    union = np.zeros(tuple(masks[0].shape))
    for mask in masks:
        union = np.maximum(union, mask.numpy() / 255.0)
    return _AUTHORS_MASK_TRANSFORM(Image.fromarray(np.uint8(union * 255)))[0]


def render(
    image: BenchmarkImage, x: torch.Tensor, masks: Mapping[int, torch.Tensor], kinds: Mapping[int, str], union: Union = float_union
) -> list[torch.Tensor]:
    """``image.views`` of ``x`` [3, H, W] in [0, 1]; ``masks``: feature -> mask [h, w], 8-bit (uint8) or in [0, 1];
    ``union``: how the selected masks become M (see the module docstring)."""
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
        mask = _fit(union([masks[f] for f in chosen]), size)
        out.append((x + sigma * eps * mask[None]).clamp(0.0, 1.0))
    return out


def renderer(
    masks_of: Callable[[BenchmarkImage], Mapping[int, torch.Tensor]],
    kinds_of: Callable[[BenchmarkImage], Mapping[int, str]],
    unions: Mapping[str, Union],
):
    """A ``Benchmark.render_views`` from where each image's masks and their kinds come from, and each
    protocol's union rule (by protocol name)."""

    def render_views(image: BenchmarkImage, x: torch.Tensor, protocol: EvalProtocol) -> list[torch.Tensor]:
        return render(image, x, masks_of(image), kinds_of(image), unions[protocol.name])

    return render_views


__all__ = [
    "authors_union",
    "check_salient_views",
    "check_sigmas",
    "float_union",
    "image_noise",
    "render",
    "renderer",
    "view_sigmas",
    "views_for",
]
