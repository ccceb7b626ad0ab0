"""The embedded ``planted`` benchmark: generated shapes with planted spurious features.

Ten classes of simple filled shapes on varied backgrounds. For the planted classes, a
distinct spurious feature (its own shape *and* texture, always black/white so that it is
never "just a colour") sits in a corner of a fixed fraction of that class's training
images. A classifier trained on this set learns the shortcut, and the benchmark then
shows it: on images of the feature alone (no object) the planted class gets a high
probability, so its class-wise AUC (clean test images vs feature-only images) is
clearly lower than the AUC of the control classes.

Design choices (see ``docs`` of the package / the probe notes for the measurements):
  * objects are big, solid, untextured and contrast with the background, so they are
    easy to recognise (the shortcut is a shortcut, not the only cue);
  * features live in a corner box that never overlaps the object's box, and backgrounds
    are smooth, so high-frequency black/white texture only ever comes from a feature.
    With a bounded receptive field and global average pooling the feature's evidence then
    adds up in the penultimate features independently of the object, which is what
    class-wise neural PCA and SpuFix need to find and remove it.

Everything is generated in-process with vectorised numpy from ``np.random.default_rng``
seeded explicitly, so the same seed gives byte-identical arrays.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from spurbench.benchmarks.base import Benchmark, BenchmarkClass, BenchmarkImage, BenchmarkOptions

# Bump whenever the generated pixels change: it keys cached models and names the revision.
GENERATOR_VERSION = 1

IMAGE_SIZE = 40  # pixels, square
PLANTED_CLASSES: list[str] = [
    "disc",
    "square",
    "triangle",
    "plus",
    "ring",
    "diamond",
    "frame",
    "saltire",
    "crescent",
    "ell",
]
# Global feature ids: index into FEATURE_NAMES. FEATURE_DESCRIPTIONS explain them in words.
FEATURE_NAMES: list[str] = ["checker-square", "striped-disc", "dotted-ring"]
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "checker-square": "black/white checkerboard square (2 px cells) in a corner",
    "striped-disc": "black/white diagonally striped disc in a corner",
    "dotted-ring": "ring of six dark-or-light dots in a corner",
}
# class index -> feature id of the feature planted in that class's training images
PLANTED_FEATURE_IDS: dict[int, int] = {1: 0, 4: 1, 8: 2}
# class index -> feature name (public, documented)
PLANTED_FEATURES: dict[int, str] = {k: FEATURE_NAMES[f] for k, f in PLANTED_FEATURE_IDS.items()}

CARRIER_FRACTION = 0.25  # of a planted class's training images carry its feature
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100  # clean positives per class
NEGATIVES_PER_CLASS = 100  # feature-only images per class

# Geometry (pixels). The object's box and every corner box are disjoint by construction.
_FEATURE_SIZE = 10  # side of the square box a feature is drawn in
_FEATURE_MARGIN = (0, 1)  # feature box offset from the image border, inclusive range
_OBJECT_RADIUS = (6.0, 7.5)  # half-size of the object's box
_OBJECT_JITTER = 1.5  # max shift of the object centre from the image centre (each axis)
# corner box ends at <= 11 px from the border, object box starts at >= 40/2 - 1.5 - 7.5 = 11 px


@dataclass(frozen=True)
class PlantedSplit:
    """One generated split. Arrays are aligned along the first axis.

    ``labels`` is the object's class for images with an object, and the class an image is a
    negative *of* for feature-only images (``has_object`` False).
    """

    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N]
    carries_feature: np.ndarray  # bool [N], ground truth: a planted feature is drawn
    feature_of: np.ndarray  # int64 [N], feature id drawn, or -1
    has_object: np.ndarray  # bool [N]
    object_mask: np.ndarray  # bool [N, S, S], pixels of the object
    feature_mask: np.ndarray  # bool [N, S, S], pixels of the feature

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class PlantedTestSets:
    """Held-out sets: ``clean`` (object, never a feature) and ``spurious`` (feature, never an object)."""

    clean: PlantedSplit
    spurious: PlantedSplit

    def checksum(self) -> str:
        """sha256 over the held-out arrays (what the benchmark scores)."""
        digest = hashlib.sha256()
        for split in (self.clean, self.spurious):
            for arr in (split.images, split.labels, split.feature_of, split.has_object):
                digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5  # pixel centres
    return ys, xs


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Float [n, S, S, 3] in [0, 1]: linear gradient, smooth noise or flat, random colours."""
    kind = rng.integers(0, 3, n)
    c0 = rng.random((n, 3), dtype=np.float32)
    c1 = rng.random((n, 3), dtype=np.float32)
    ys, xs = _grid(size)
    theta = rng.random(n, dtype=np.float32) * 2 * np.pi
    t = ((xs[None] - size / 2) * np.cos(theta)[:, None, None] + (ys[None] - size / 2) * np.sin(theta)[:, None, None]) / size + 0.5
    gradient = c0[:, None, None] + np.clip(t, 0, 1)[..., None] * (c1 - c0)[:, None, None]
    # Smooth noise: a 4x4 grid of colours near c0, bilinearly upsampled. Smooth on purpose: blocky
    # noise has edges and corners that look like the features' textures.
    coarse = np.clip(c0[:, None, None] + (rng.random((n, 4, 4, 3), dtype=np.float32) - 0.5) * 0.8, 0, 1)
    pos = np.clip((np.arange(size, dtype=np.float32) + 0.5) / size * 4 - 0.5, 0, 3)
    lo = np.minimum(pos.astype(np.int64), 2)
    frac = pos - lo
    up = np.zeros((size, 4), dtype=np.float32)  # interpolation matrix
    up[np.arange(size), lo] = 1 - frac
    up[np.arange(size), lo + 1] += frac
    noise = np.einsum("ya,nabc,xb->nyxc", up, coarse, up, optimize=True)
    flat = np.broadcast_to(c0[:, None, None], (n, size, size, 3))
    out = np.where((kind == 0)[:, None, None, None], gradient, np.where((kind == 1)[:, None, None, None], noise, flat))
    return out.astype(np.float32)


def _shape_mask(cls: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of class ``cls``'s shape in coordinates normalised to the object's box ([-1, 1]^2)."""
    au, av = np.abs(u), np.abs(v)
    r2 = u * u + v * v
    name = PLANTED_CLASSES[cls]
    if name == "disc":
        return r2 <= 1.0
    if name == "square":
        return np.maximum(au, av) <= 0.82
    if name == "triangle":  # apex up
        return (v <= 0.85) & (v >= -0.95) & (au <= 0.55 * (v + 0.95))
    if name == "plus":
        return ((au <= 0.3) | (av <= 0.3)) & (np.maximum(au, av) <= 0.95)
    if name == "ring":
        return (r2 <= 1.0) & (r2 >= 0.5**2)
    if name == "diamond":
        return au + av <= 1.0
    if name == "frame":  # hollow square
        m = np.maximum(au, av)
        return (m <= 0.85) & (m >= 0.42)
    if name == "saltire":  # diagonal cross
        return ((np.abs(u - v) <= 0.42) | (np.abs(u + v) <= 0.42)) & (np.maximum(au, av) <= 0.85)
    if name == "crescent":
        return (r2 <= 1.0) & ((u - 0.5) ** 2 + v * v >= 0.75**2)
    if name == "ell":
        return ((u >= -0.85) & (u <= -0.25) & (av <= 0.9)) | ((v >= 0.3) & (v <= 0.9) & (au <= 0.85))
    raise ValueError(name)


def _feature_layers(fid: int, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, ink) of feature ``fid`` in box-local pixel coordinates (0..FEATURE_SIZE).

    ``ink`` is True where the texture is dark; the rest of the mask is light. For the dotted
    ring ``ink`` is None-like (all True) and the caller picks dark or light dots by contrast.
    """
    size = _FEATURE_SIZE
    cx = cy = size / 2
    ru, rv = dx - cx, dy - cy
    r = np.sqrt(ru * ru + rv * rv)
    name = FEATURE_NAMES[fid]
    if name == "checker-square":
        mask = (dx >= 0.5) & (dx <= size - 0.5) & (dy >= 0.5) & (dy <= size - 0.5)
        ink = ((np.floor(dx / 2) + np.floor(dy / 2)) % 2) == 0
        return mask, ink
    if name == "striped-disc":
        mask = r <= size / 2
        ink = (np.floor((dx + dy) / 2.5) % 2) == 0
        return mask, ink
    if name == "dotted-ring":
        angles = np.arange(6) * (np.pi / 3)
        ring = size / 2 - 1.6
        mask = np.zeros(dx.shape, dtype=bool)
        for a in angles:
            mask |= (ru - ring * np.cos(a)) ** 2 + (rv - ring * np.sin(a)) ** 2 <= 1.25**2
        return mask, np.ones(dx.shape, dtype=bool)
    raise ValueError(name)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _render(rng: np.random.Generator, labels: np.ndarray, has_object: np.ndarray, feature_of: np.ndarray) -> PlantedSplit:
    """Draw one image per entry: background, then the object (if any), then the feature (if any)."""
    n, size = len(labels), IMAGE_SIZE
    img = _backgrounds(rng, n, size)
    ys, xs = _grid(size)

    # --- object: random size and centre jitter, colour contrasting with the background under it
    radius = rng.uniform(*_OBJECT_RADIUS, n).astype(np.float32)
    cx = size / 2 + rng.uniform(-_OBJECT_JITTER, _OBJECT_JITTER, n).astype(np.float32)
    cy = size / 2 + rng.uniform(-_OBJECT_JITTER, _OBJECT_JITTER, n).astype(np.float32)
    u = (xs[None] - cx[:, None, None]) / radius[:, None, None]
    v = (ys[None] - cy[:, None, None]) / radius[:, None, None]
    object_mask = np.zeros((n, size, size), dtype=bool)
    for cls in range(len(PLANTED_CLASSES)):
        idx = np.flatnonzero(has_object & (labels == cls))
        if idx.size:
            object_mask[idx] = _shape_mask(cls, u[idx], v[idx])
    # Why contrast: recognising the shape must be easy, so its edge is always visible.
    under = (img * object_mask[..., None]).sum((1, 2)) / np.maximum(object_mask.sum((1, 2)), 1)[:, None]
    candidates = rng.random((n, 8, 3), dtype=np.float32)
    dist = np.linalg.norm(candidates - under[:, None], axis=-1)
    good = dist >= 0.45
    pick = np.where(good.any(1), good.argmax(1), dist.argmax(1))
    colour = candidates[np.arange(n), pick]
    img = np.where(object_mask[..., None], colour[:, None, None], img)

    # --- feature: a corner box disjoint from the object's box, black/white texture
    feature_mask = np.zeros((n, size, size), dtype=bool)
    corner = rng.integers(0, 4, n)
    off = rng.integers(_FEATURE_MARGIN[0], _FEATURE_MARGIN[1] + 1, (n, 2))
    x0 = np.where(corner % 2 == 0, off[:, 0], size - _FEATURE_SIZE - off[:, 0]).astype(np.float32)
    y0 = np.where(corner // 2 == 0, off[:, 1], size - _FEATURE_SIZE - off[:, 1]).astype(np.float32)
    dark = rng.uniform(0.0, 0.12, (n, 1)).astype(np.float32) * np.ones(3, np.float32)
    light = rng.uniform(0.88, 1.0, (n, 1)).astype(np.float32) * np.ones(3, np.float32)
    for fid in range(len(FEATURE_NAMES)):
        idx = np.flatnonzero(feature_of == fid)
        if not idx.size:
            continue
        dx = xs[None] - x0[idx, None, None]
        dy = ys[None] - y0[idx, None, None]
        mask, ink = _feature_layers(fid, dx, dy)
        mask &= (dx >= 0) & (dx < _FEATURE_SIZE) & (dy >= 0) & (dy < _FEATURE_SIZE)
        if FEATURE_NAMES[fid] == "dotted-ring":
            # one ink colour, dark on light backgrounds and light on dark ones
            bg = (img[idx] * mask[..., None]).sum((1, 2)) / np.maximum(mask.sum((1, 2)), 1)[:, None]
            ink = ink & (_luma(bg) > 0.5)[:, None, None]
        texture = np.where(ink[..., None], dark[idx, None, None], light[idx, None, None])
        img[idx] = np.where(mask[..., None], texture, img[idx])
        feature_mask[idx] = mask

    images = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return PlantedSplit(
        images=images,
        labels=labels.astype(np.int64),
        carries_feature=feature_of >= 0,
        feature_of=feature_of.astype(np.int64),
        has_object=has_object.astype(bool),
        object_mask=object_mask,
        feature_mask=feature_mask,
    )


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Independent, explicit streams per split so that changing one split never shifts another.
    return np.random.default_rng(np.random.SeedSequence([GENERATOR_VERSION, int(seed), stream]))


# ---------------------------------------------------------------------------------------------
# public generators
# ---------------------------------------------------------------------------------------------


def generate_training_set(seed: int = 0, per_class: int = TRAIN_PER_CLASS) -> PlantedSplit:
    """Training images: every class's object; exactly ``CARRIER_FRACTION`` of each planted class also
    carries that class's feature (ground truth in ``carries_feature`` / ``feature_of``)."""
    rng = _rng(seed, 0)
    num_classes = len(PLANTED_CLASSES)
    labels = np.repeat(np.arange(num_classes), per_class)
    feature_of = np.full(labels.shape, -1, dtype=np.int64)
    n_carriers = int(round(CARRIER_FRACTION * per_class))
    for cls, fid in PLANTED_FEATURE_IDS.items():
        members = np.flatnonzero(labels == cls)
        feature_of[rng.choice(members, n_carriers, replace=False)] = fid
    order = rng.permutation(labels.size)  # shuffled once so that slicing a prefix stays balanced
    labels, feature_of = labels[order], feature_of[order]
    return _render(rng, labels, np.ones(labels.shape, dtype=bool), feature_of)


def generate_test_sets(seed: int = 0, per_class: int = TEST_PER_CLASS, negatives_per_class: int = NEGATIVES_PER_CLASS) -> PlantedTestSets:
    """Held-out sets: clean images of every class (no feature), and per class feature-only images
    (no object): the class's own feature for planted classes, other classes' features for controls."""
    num_classes = len(PLANTED_CLASSES)
    clean_labels = np.repeat(np.arange(num_classes), per_class)
    clean = _render(_rng(seed, 1), clean_labels, np.ones(clean_labels.shape, bool), np.full(clean_labels.shape, -1))

    rng = _rng(seed, 2)
    neg_labels = np.repeat(np.arange(num_classes), negatives_per_class)
    planted_ids = np.array(sorted(PLANTED_FEATURE_IDS.values()))
    neg_features = rng.choice(planted_ids, neg_labels.size)  # controls: any planted feature
    for cls, fid in PLANTED_FEATURE_IDS.items():
        neg_features[neg_labels == cls] = fid
    spurious = _render(rng, neg_labels, np.zeros(neg_labels.shape, bool), neg_features)
    return PlantedTestSets(clean=clean, spurious=spurious)


def ground_truth() -> dict:
    """What was planted, as recorded in ``Benchmark.extra['ground_truth']``."""
    return {
        "planted_classes": {PLANTED_CLASSES[k]: FEATURE_NAMES[f] for k, f in PLANTED_FEATURE_IDS.items()},
        "planted_class_indices": sorted(PLANTED_FEATURE_IDS),
        "features": {name: {"id": i, "description": FEATURE_DESCRIPTIONS[name]} for i, name in enumerate(FEATURE_NAMES)},
        "train_carrier_fraction": CARRIER_FRACTION,
        "train_per_class": TRAIN_PER_CLASS,
        "image_size": IMAGE_SIZE,
    }


# ---------------------------------------------------------------------------------------------
# benchmark loader
# ---------------------------------------------------------------------------------------------


def _loader(array: np.ndarray) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(array)


def load_planted(options: BenchmarkOptions) -> Benchmark:
    """The ``planted`` benchmark: per class, clean generated positives and feature-only negatives.

    The component id of a negative is the global id of the feature it shows (``FEATURE_NAMES``).
    ``options.seed`` seeds the generator; ``options.limit`` caps images per (class, role).
    """
    seed = int(options.seed)
    sets = generate_test_sets(seed)
    limit = options.limit
    classes: list[BenchmarkClass] = []
    images: list[BenchmarkImage] = []
    for k, name in enumerate(PLANTED_CLASSES):
        planted = k in PLANTED_FEATURE_IDS
        for role, split, split_name in (("positive", sets.clean, "clean"), ("negative", sets.spurious, "spurious")):
            rows = np.flatnonzero(split.labels == k)
            if limit is not None:
                rows = rows[: max(int(limit), 0)]
            for i, row in enumerate(rows):
                image_id = f"planted/{split_name}/{name}/{i}"
                images.append(
                    BenchmarkImage(
                        image_id=image_id,
                        class_index=k,
                        role=role,  # type: ignore[arg-type]
                        component=int(split.feature_of[row]) if role == "negative" else None,
                        origin=f"planted-generator seed={seed} {image_id}",
                        loader=_loader(split.images[row]),
                    )
                )
        negative_components = sorted({int(f) for f in sets.spurious.feature_of[sets.spurious.labels == k]})
        classes.append(
            BenchmarkClass(
                index=k,
                name=name,
                components=tuple(negative_components),
                planted=planted,
                feature=FEATURE_DESCRIPTIONS[PLANTED_FEATURES[k]] if planted else None,
            )
        )
    return Benchmark(
        name="planted",
        label_space="planted",
        classes=classes,
        images=images,
        repo=None,
        revision=f"generator-v{GENERATOR_VERSION}-seed{seed}",
        checksum=sets.checksum(),
        positives_source="generator",
        positive_crop_pct=1.0,
        extra={"ground_truth": ground_truth()},
    )


__all__ = [
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "PLANTED_CLASSES",
    "PLANTED_FEATURES",
    "PLANTED_FEATURE_IDS",
    "FEATURE_NAMES",
    "FEATURE_DESCRIPTIONS",
    "CARRIER_FRACTION",
    "PlantedSplit",
    "PlantedTestSets",
    "generate_training_set",
    "generate_test_sets",
    "ground_truth",
    "load_planted",
]
