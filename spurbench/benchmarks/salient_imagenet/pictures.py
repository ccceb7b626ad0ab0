"""Salient masks drawn over their image, for the board: core masks blue, spurious masks red."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image

COLOURS = {"core": (40, 110, 255), "spurious": (235, 40, 40)}
MIN_SIDE = 160  # px: small generated images are enlarged (nearest) so that the masks can be seen


def mask_overlay(image: np.ndarray, masks: Mapping[str, np.ndarray], opacity: float = 0.55) -> Image.Image:
    """``image`` [H, W, 3] uint8 with each mask ([H, W], soft or binary) tinted in: a name containing
    "spurious" in red, every other in blue; where masks overlap, the one drawn last shows most."""
    out = image.astype(np.float32)
    for name, mask in masks.items():
        colour = np.array(COLOURS["spurious" if "spurious" in name else "core"], dtype=np.float32)
        weight = np.clip(np.asarray(mask, dtype=np.float32), 0, 1)[..., None] * opacity
        out = out * (1 - weight) + colour * weight
    picture = Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))
    if min(picture.size) < MIN_SIDE:
        scale = -(-MIN_SIDE // min(picture.size))
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return picture


__all__ = ["mask_overlay"]
