"""The ImageNet-W watermark (Li et al., "A Whac-A-Mole Dilemma", CVPR 2023), as a tensor transform.

ImageNet-W is ImageNet val with the text "捷径捷径捷径" drawn over every image, after resize and crop and
before normalisation (on the model-input-sized, un-normalised image): font Source Han Serif SC
ExtraLight, white at opacity 0.5, its anchor at (0.01·W, 0.4·H), font size 36 at 224 px (62 at 384,
82 at 512, 84 at 518, else ``int(size / 6.22)``). :func:`watermark` reproduces the reference transform
(``imagenet_w.AddWatermark`` of the ``imagenet-w`` package) pixel for pixel when given the same font
file, and it is cheap: the text is rendered once per (height, width, font) and each image is then
composited with a few tensor operations.

Font. The typeface is Source Han Serif, which Google ships, with the same outlines and the same
version (2.001), as Noto Serif CJK. :func:`find_font` looks, in this order, at

1. ``$SPURBENCH_WATERMARK_FONT`` (a font file; ``path#N`` picks face N of a ``.ttc`` collection): an
   explicit choice always wins, and a wrong one is an error rather than a silent fallback;
2. Debian's Noto Serif CJK ExtraLight (package ``fonts-noto-cjk-extra``, a collection whose SC face is
   found by its family name): **preferred** over the package's copy because it is under the SIL Open
   Font License, so CI images and users may install and redistribute it freely;
3. the font bundled in the ``imagenet-w`` package (``pip install 'spurbench[imagenet-w]'``): the exact
   file the paper used, but the package's LICENSE file is CC BY-NC 4.0 (although its metadata says
   BSD-3-Clause), so spurbench never requires it and uses it only when it is installed and Debian's
   font is not.

The two files are builds of the same font version and, measured with Debian bookworm's package, render
the watermark identically (``tests/test_watermark.py`` asserts it, so a drift in Debian's font shows);
:attr:`FontSource.origin` still says which one was used, so results can record it. (The font file inside
imagenet-w is itself Adobe's, under the OFL by its own name table; it is the package that is CC BY-NC.)

Quantisation. ``AddWatermark`` converts the tensor to an 8-bit PIL image (``x * 255`` truncated),
alpha-composites in 8 bits and converts back, so its output is always on the 1/255 grid. By default
:func:`watermark` does the same integer arithmetic: for the usual input (PIL resize and crop, then
``ToTensor``) the truncation is lossless, so the result is bit-identical to the reference, and for
other inputs it still reproduces what the published ImageNet-W numbers were computed on.
``quantize=False`` gives the exact real-valued blend ``x + (1 - x) · a`` instead (within 1/255 of the
reference), e.g. for inputs that must stay differentiable.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from spurbench.errors import SpurbenchError

WATERMARK_TEXT = "捷径捷径捷径"  # "shortcut" three times
OPACITY = 0.5
X_POS, Y_POS = 0.01, 0.4  # the text anchor, as fractions of the width and height

FONT_ENV = "SPURBENCH_WATERMARK_FONT"
# Debian/Ubuntu's path of Noto Serif CJK ExtraLight (package fonts-noto-cjk-extra); a tuple so that other
# distributions' paths can be added and tests can point it elsewhere.
NOTO_SERIF_CJK_PATHS: tuple[Path, ...] = (Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-ExtraLight.ttc"),)
NOTO_SC_FAMILY = "Noto Serif CJK SC"
IMAGENET_W_FONT = "fonts/SourceHanSerifSC-ExtraLight.otf"  # inside the imagenet_w package

# The reference transform's sizes, then its fallback. 518 (DINOv2-style inputs) is in its table too.
_FONT_SIZES = {224: 36, 384: 62, 512: 82, 518: 84}


@dataclass(frozen=True)
class FontSource:
    """A font file and the face in it to draw the watermark with; ``origin`` says where it came from
    (worth recording next to results, since the two usual sources differ by a few pixel levels)."""

    path: Path
    index: int = 0
    origin: str = ""


def font_size(size: int) -> int:
    """Font size for an input of ``size`` pixels, as the reference transform picks it: a table for the
    common sizes, else ``int(size / 6.22)`` (truncated, not rounded)."""
    return _FONT_SIZES.get(int(size), int(size / 6.22))


def _face_index(path: Path, family: str) -> int | None:
    """Index of the face named ``family`` in a font collection, None if there is none."""
    index = 0
    while True:
        try:
            face = ImageFont.truetype(str(path), 12, index=index)
        except OSError:  # FreeType's "invalid argument" past the last face
            return None
        if face.getname()[0] == family:
            return index
        index += 1


def _env_font(value: str) -> FontSource:
    path, sep, index = value.rpartition("#")
    if not sep or not index.isdigit():  # no "#N" suffix: the whole value is the path
        path, index = value, "0"
    source = FontSource(Path(path).expanduser(), int(index), f"${FONT_ENV}")
    try:
        ImageFont.truetype(str(source.path), 12, index=source.index)
    except OSError as exc:
        raise SpurbenchError(f"${FONT_ENV}={value!r} is not a readable font (face {source.index}): {exc}") from None
    return source


def _imagenet_w_font() -> Path | None:
    """The font bundled in the imagenet-w package, found without importing it (which imports torchvision)."""
    try:
        spec = importlib.util.find_spec("imagenet_w")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / IMAGENET_W_FONT
        if candidate.is_file():
            return candidate
    return None


def find_font() -> FontSource:
    """The watermark font: ``$SPURBENCH_WATERMARK_FONT``, else Debian's Noto Serif CJK SC ExtraLight, else
    the imagenet-w package's Source Han Serif SC ExtraLight (see the module docstring for why this order).
    Raises :class:`SpurbenchError` (one line: how to get a font) when there is none. :func:`watermark`
    without a ``font`` runs this search once per process."""
    value = os.environ.get(FONT_ENV, "").strip()
    if value:
        return _env_font(value)
    for path in NOTO_SERIF_CJK_PATHS:
        if path.is_file():
            index = _face_index(path, NOTO_SC_FAMILY)
            if index is not None:
                return FontSource(path, index, "noto-serif-cjk (Debian fonts-noto-cjk-extra)")
    bundled = _imagenet_w_font()
    if bundled is not None:
        return FontSource(bundled, 0, "imagenet-w package")
    raise SpurbenchError(
        "no font for the ImageNet-W watermark: install Noto Serif CJK ExtraLight "
        "(apt-get install fonts-noto-cjk-extra), or pip install 'spurbench[imagenet-w]', "
        f"or set {FONT_ENV}=/path/to/SourceHanSerifSC-ExtraLight.otf (path#N for face N of a .ttc)"
    )


@functools.lru_cache(maxsize=1)
def _default_font() -> FontSource:
    # The search touches the file system and opens font files; once per process is enough.
    return find_font()


@functools.lru_cache(maxsize=16)
def _truetype(path: Path, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size, index=index)


@functools.lru_cache(maxsize=32)
def coverage(height: int, width: int, font: FontSource) -> torch.Tensor:
    """The text's 8-bit coverage (0 = untouched, 255 = fully inside a glyph), uint8 [height, width],
    rendered once per (height, width, font); the tensor is cached and shared, so do not modify it."""
    # Like the reference, the font size follows the height: it sets it from the crop size's first
    # element (torchvision's (h, w) order); the anchor follows the actual width and height.
    face = _truetype(font.path, font.index, font_size(height))
    canvas = Image.new("L", (width, height), 0)
    # Pillow's default anchor "la": x at the left of the text, y at its ascender line (the ink of these
    # glyphs begins some way below it); fractional positions are kept (sub-pixel start), as in the reference.
    ImageDraw.Draw(canvas).text((X_POS * width, Y_POS * height), WATERMARK_TEXT, fill=255, font=face)
    return torch.from_numpy(np.asarray(canvas, dtype=np.uint8).copy())


@functools.lru_cache(maxsize=32)
def _alpha(height: int, width: int, font: FontSource) -> torch.Tensor:
    """The watermark layer's 8-bit alpha, as float32 integers 0..128: the reference draws with ink alpha
    round(0.5·255) = 128 and Pillow scales coverage c by it as round(c·128/255) (never a tie)."""
    ink = round(OPACITY * 255)
    return torch.round(coverage(height, width, font).to(torch.float32) * ink / 255)


def watermark(x: torch.Tensor, font: FontSource | None = None, *, quantize: bool = True) -> torch.Tensor:
    """``x`` (float, [3, H, W] or [..., 3, H, W], values in [0, 1]: resized, cropped, not normalised) with
    the ImageNet-W watermark; same shape and dtype. ``font``: default :func:`find_font`'s.
    ``quantize`` (default): the reference's 8-bit arithmetic, bit-identical output; False: real-valued blend."""
    if not x.is_floating_point() or x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected a float image tensor [..., 3, H, W], got {x.dtype} {tuple(x.shape)}")
    font = font or _default_font()
    height, width = int(x.shape[-2]), int(x.shape[-1])
    # float32 at least: the 8-bit arithmetic below is exact in it (integers < 2**24, and no quotient lies
    # within float32 error of a .5), not in float16/bfloat16.
    work = torch.promote_types(x.dtype, torch.float32)
    alpha = _alpha(height, width, font).to(device=x.device, dtype=work)
    if not quantize:
        return (x + (1 - x) * (alpha / 255)).to(x.dtype)
    # The reference's float -> uint8 step truncates (floor, for values >= 0); clamp first, where it would
    # wrap out-of-range values around.
    q = torch.floor(x.to(work).clamp(0, 1) * 255)
    # Pillow's alpha_composite of white at alpha a over an opaque pixel q is round((255·a + q·(255 − a)) / 255),
    # exactly (checked over all 256×256 pairs); the quotient is never a tie since 255 is odd.
    out = torch.round((255 * alpha + q * (255 - alpha)) / 255)
    return (out / 255).to(x.dtype)
