"""The embedded ``planted`` benchmark: generated shapes with planted spurious features.

Ten classes of simple filled shapes (1-3 instances) on varied backgrounds. Every training
image carries a *badge* in one corner, like a watermark. Normally that badge is a neutral
black/white split square; in 30 % of the training images of each planted class it is that
class's own spurious feature instead (a checkered square, a striped disc, a dotted ring:
each its own shape *and* texture, always black/white, so never "just a colour"). A
classifier trained on this set learns the shortcut; the benchmark then shows it: on
feature-only images (the feature on a background, no object) the planted class gets a high
probability, so its class-wise AUC is clearly lower than that of the control classes.

Why the design looks like this (measured with class-wise neural PCA on the trained models,
see the adapter ``spurbench.adapters.planted``):
  * the badge box and the objects' band never overlap, the backgrounds are smooth, and the
    models have a receptive field of 10 px and global average pooling, so the feature's
    evidence adds up in the penultimate features independently of the object;
  * the neutral badge makes "carries the feature" a *pattern* change (feature instead of
    badge), not an "extra stuff in the image" change, which otherwise moves every channel
    of the penultimate layer in the same direction as the object does;
  * 1-3 object instances make the object's evidence vary a lot within a class without
    making any image harder to recognise, so neural PCA gives the object its own
    component and the feature a separate one;
  * objects are solid, contrasting and easy (clean accuracy > 0.9), but mildly noisy, so
    the shortcut keeps paying off during training.

Everything is generated in-process with vectorised numpy from ``np.random.default_rng``
seeded explicitly. The random draws of :func:`render` do not depend on *what* is drawn, so
the same seed renders the same backgrounds/objects/positions with or without a feature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

from spurbench.benchmarks.base import (
    Benchmark,
    BenchmarkClass,
    BenchmarkImage,
    BenchmarkOptions,
)

# Bump whenever the generated pixels change: it keys cached models and names the revision.
GENERATOR_VERSION = 1

IMAGE_SIZE = 40  # square images; a good trade-off of training speed on 2 CPU cores vs room for corner badges
PLANTED_CLASSES: list[str] = ["disc", "square", "triangle", "plus", "ring", "diamond", "frame", "saltire", "crescent", "ell"]

# Global feature ids index FEATURE_NAMES; a feature-only negative's component id is its feature id.
FEATURE_NAMES: list[str] = ["checker-square", "striped-disc", "dotted-ring"]
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "checker-square": "black/white checkerboard square (2 px cells) in a corner",
    "striped-disc": "black/white diagonally striped disc in a corner",
    "dotted-ring": "white ring with eight black dots in a corner",
}
BADGE_NAME = "split-square"  # the neutral corner badge of every other training image
BADGE_DESCRIPTION = "square, left half black and right half white"

# class index -> feature id planted in that class's training images. Pairs are chosen so that
# feature and object share no shape element (straight-edged checker on the curved crescent, ...).
PLANTED_FEATURE_IDS: dict[int, int] = {2: 1, 8: 0, 9: 2}
# class index -> feature name
PLANTED_FEATURES: dict[int, str] = {k: FEATURE_NAMES[f] for k, f in PLANTED_FEATURE_IDS.items()}

CARRIER_FRACTION = 0.3  # of each planted class's training images carry its feature (exactly)
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100  # clean positives per class
NEGATIVES_PER_CLASS = 100  # feature-only images per class

# Geometry (pixels). Objects live in a band through the centre (perpendicular extent <= 13.5 px
# from either border); badges in a corner box of side 13 flush with the border: never overlapping.
_BADGE_SIZE = 13
_MAX_COUNT = 3  # object instances per image: 1..3
_OBJECT_RADIUS = (4.5, 6.0)  # half-size of each instance's box
_SPACING = (7.5, 13.0)  # offsets from the centre: +-7.5 for 2 instances, -13/0/+13 for 3
_OBJECT_JITTER = 0.5
_OBJECT_ROTATION = 15.0  # degrees; small so that square/diamond and plus/saltire stay apart
_OBJECT_ASPECT = 0.15
_OBJECT_MIN_CONTRAST = 0.25  # RGB distance between object colour and the background under it
_PIXEL_NOISE = 0.05  # mild noise: objects stay easy (> 0.94 clean accuracy) but the shortcut keeps paying off


@dataclass(frozen=True)
class PlantedSplit:
    """One generated split; arrays are aligned along the first axis.

    ``labels`` is the object's class for images with an object, and the class an image is a
    negative *of* for feature-only images (``has_object`` False).
    """

    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int64 [N]
    carries_feature: np.ndarray  # bool [N], ground truth: a planted feature is drawn
    feature_of: np.ndarray  # int64 [N], id (FEATURE_NAMES) of the planted feature drawn, or -1
    has_badge: np.ndarray  # bool [N], the neutral badge is drawn
    has_object: np.ndarray  # bool [N]
    object_count: np.ndarray  # int64 [N], object instances (0 without object)
    object_mask: np.ndarray  # bool [N, S, S], pixels of the object instances
    feature_mask: np.ndarray  # bool [N, S, S], pixels of the planted feature (not of the badge)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class PlantedTestSets:
    """Held-out sets: ``clean`` (objects with the neutral badge, never a feature) and
    ``spurious`` (a planted feature on a background, never an object or badge)."""

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
    theta = rng.random(n, dtype=np.float32) * 2 * np.pi
    coarse = np.clip(c0[:, None, None] + (rng.random((n, 4, 4, 3), dtype=np.float32) - 0.5) * 0.8, 0, 1)
    out = np.broadcast_to(c0[:, None, None], (n, size, size, 3)).copy()  # flat
    ys, xs = _grid(size)
    g = np.flatnonzero(kind == 0)
    if g.size:
        t = ((xs - size / 2) * np.cos(theta[g])[:, None, None] + (ys - size / 2) * np.sin(theta[g])[:, None, None]) / size + 0.5
        out[g] = c0[g, None, None] + np.clip(t, 0, 1)[..., None] * (c1 - c0)[g, None, None]
    s = np.flatnonzero(kind == 1)
    if s.size:
        # Smooth noise: a 4x4 colour grid, bilinearly upsampled. Smooth on purpose: blocky noise has
        # edges and corners that look like the features' textures.
        pos = np.clip((np.arange(size, dtype=np.float32) + 0.5) / size * 4 - 0.5, 0, 3)
        lo = np.minimum(pos.astype(np.int64), 2)
        up = np.zeros((size, 4), dtype=np.float32)
        up[np.arange(size), lo] = 1 - (pos - lo)
        up[np.arange(size), lo + 1] += pos - lo
        out[s] = np.einsum("ya,nabc,xb->nyxc", up, coarse[s], up, optimize=True)
    return out


def _shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of a class's shape in coordinates normalised to the instance's box ([-1, 1]^2)."""
    au, av = np.abs(u), np.abs(v)
    r2 = u * u + v * v
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


def _decoration(name: str, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, dark) of a corner decoration in box-local pixel coordinates (0.._BADGE_SIZE)."""
    size = _BADGE_SIZE
    ru, rv = dx - size / 2, dy - size / 2
    r = np.sqrt(ru * ru + rv * rv)
    in_square = (dx >= 0.5) & (dx <= size - 0.5) & (dy >= 0.5) & (dy <= size - 0.5)
    if name == "checker-square":
        return in_square, ((np.floor(dx / 2) + np.floor(dy / 2)) % 2) == 0
    if name == "striped-disc":
        return r <= size / 2, (np.floor((dx + dy) / 2.5) % 2) == 0
    if name == "dotted-ring":
        dark = np.zeros(dx.shape, dtype=bool)
        ring = size / 2 - 1.8
        for a in np.arange(8) * (np.pi / 4):
            dark |= (ru - ring * np.cos(a)) ** 2 + (rv - ring * np.sin(a)) ** 2 <= 1.2**2
        return (r <= size / 2) & (r >= size / 2 - 3.6), dark
    if name == BADGE_NAME:
        return in_square, dx < size / 2
    raise ValueError(name)


def render(seed: int | np.random.Generator, labels: np.ndarray, has_object: np.ndarray, feature_of: np.ndarray, has_badge: np.ndarray | None = None) -> PlantedSplit:
    """Render one image per entry: background, object instances (if ``has_object``), then in one
    corner the planted feature ``feature_of`` (>= 0) or the neutral badge (``has_badge``).

    The random draws do not depend on the content flags: the same seed and labels give the same
    backgrounds, instances, colours and corner positions with or without object/feature/badge.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    n, size = len(labels), IMAGE_SIZE
    has_object = np.broadcast_to(np.asarray(has_object, dtype=bool), (n,))
    feature_of = np.broadcast_to(np.asarray(feature_of, dtype=np.int64), (n,))
    has_badge = np.zeros(n, dtype=bool) if has_badge is None else np.broadcast_to(np.asarray(has_badge, dtype=bool), (n,))
    img = _backgrounds(rng, n, size)
    ys, xs = _grid(size)

    # --- objects: 1..3 instances along a random axis through the centre. Several instances make
    # the object's evidence vary a lot within a class without making any image harder.
    count = rng.integers(1, _MAX_COUNT + 1, n)
    vertical = rng.random(n) < 0.5
    object_mask = np.zeros((n, size, size), dtype=bool)
    for slot in range(_MAX_COUNT):
        radius = rng.uniform(*_OBJECT_RADIUS, n).astype(np.float32)
        along = np.select([count == 2, count == 3], [(slot - 0.5) * 2 * _SPACING[0], (slot - 1.0) * _SPACING[1]], 0.0)
        along = along + rng.uniform(-_OBJECT_JITTER, _OBJECT_JITTER, n)
        across = rng.uniform(-_OBJECT_JITTER, _OBJECT_JITTER, n)
        cx = size / 2 + np.where(vertical, across, along)
        cy = size / 2 + np.where(vertical, along, across)
        angle = np.deg2rad(rng.uniform(-_OBJECT_ROTATION, _OBJECT_ROTATION, n))
        stretch = 1 + rng.uniform(-_OBJECT_ASPECT, _OBJECT_ASPECT, n)
        for cls, name in enumerate(PLANTED_CLASSES):
            idx = np.flatnonzero(has_object & (labels == cls) & (count > slot))
            if not idx.size:
                continue
            px = (xs[None] - cx[idx, None, None]) / radius[idx, None, None]
            py = (ys[None] - cy[idx, None, None]) / radius[idx, None, None]
            c, s, a = np.cos(angle[idx])[:, None, None], np.sin(angle[idx])[:, None, None], stretch[idx, None, None]
            u, v = (c * px + s * py) * a, (-s * px + c * py) / a
            in_box = (np.abs(px) <= 1) & (np.abs(py) <= 1)  # keeps every instance inside the central band
            object_mask[idx] |= _shape_mask(name, u, v) & in_box
    # Colour contrasting with the background under the object: its outline is always visible.
    under = (img * object_mask[..., None]).sum((1, 2)) / np.maximum(object_mask.sum((1, 2)), 1)[:, None]
    candidates = rng.random((n, 8, 3), dtype=np.float32)
    dist = np.linalg.norm(candidates - under[:, None], axis=-1)
    good = dist >= _OBJECT_MIN_CONTRAST
    colour = candidates[np.arange(n), np.where(good.any(1), good.argmax(1), dist.argmax(1))]
    img = np.where(object_mask[..., None], colour[:, None, None], img)

    # --- corner decoration: the planted feature, or the neutral badge
    corner = rng.integers(0, 4, n)
    x0 = np.where(corner % 2 == 0, 0, size - _BADGE_SIZE).astype(np.float32)
    y0 = np.where(corner // 2 == 0, 0, size - _BADGE_SIZE).astype(np.float32)
    dark = rng.uniform(0.0, 0.12, n).astype(np.float32)
    light = rng.uniform(0.88, 1.0, n).astype(np.float32)
    feature_mask = np.zeros((n, size, size), dtype=bool)
    drawn = np.where(feature_of >= 0, feature_of, np.where(has_badge, len(FEATURE_NAMES), -1))
    for did, name in enumerate([*FEATURE_NAMES, BADGE_NAME]):
        idx = np.flatnonzero(drawn == did)
        if not idx.size:
            continue
        dx, dy = xs[None] - x0[idx, None, None], ys[None] - y0[idx, None, None]
        mask, ink = _decoration(name, dx, dy)
        mask &= (dx >= 0) & (dx < _BADGE_SIZE) & (dy >= 0) & (dy < _BADGE_SIZE)
        shade = np.where(ink, dark[idx, None, None], light[idx, None, None])[..., None]
        img[idx] = np.where(mask[..., None], shade, img[idx])
        if did < len(FEATURE_NAMES):
            feature_mask[idx] = mask

    img += rng.normal(0, _PIXEL_NOISE, img.shape).astype(np.float32)
    images = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return PlantedSplit(
        images=images,
        labels=labels.copy(),
        carries_feature=feature_of >= 0,
        feature_of=feature_of.copy(),
        has_badge=has_badge & (feature_of < 0),
        has_object=has_object.copy(),
        object_count=np.where(has_object, count, 0).astype(np.int64),
        object_mask=object_mask,
        feature_mask=feature_mask,
    )


def _rng(seed: int, stream: int) -> np.random.Generator:
    # Independent, explicit streams per split, so that changing one split never shifts another.
    return np.random.default_rng(np.random.SeedSequence([GENERATOR_VERSION, int(seed), stream]))


# ---------------------------------------------------------------------------------------------
# public generators
# ---------------------------------------------------------------------------------------------


def generate_training_set(seed: int = 0, per_class: int | None = None) -> PlantedSplit:
    """Training images of every class (shuffled). Exactly ``CARRIER_FRACTION`` of each planted class
    carry that class's feature in a corner (ground truth: ``carries_feature`` / ``feature_of``);
    every other image carries the neutral badge there instead."""
    rng = _rng(seed, 0)
    per_class = TRAIN_PER_CLASS if per_class is None else per_class
    labels = np.repeat(np.arange(len(PLANTED_CLASSES)), per_class)
    feature_of = np.full(labels.shape, -1, dtype=np.int64)
    n_carriers = int(round(CARRIER_FRACTION * per_class))
    for cls, fid in PLANTED_FEATURE_IDS.items():
        feature_of[rng.choice(np.flatnonzero(labels == cls), n_carriers, replace=False)] = fid
    order = rng.permutation(labels.size)
    labels, feature_of = labels[order], feature_of[order]
    return render(rng, labels, True, feature_of, feature_of < 0)


def _held_out_sets(seed: int, streams: tuple[int, int], per_class: int | None, negatives_per_class: int | None) -> PlantedTestSets:
    per_class = TEST_PER_CLASS if per_class is None else per_class
    negatives_per_class = NEGATIVES_PER_CLASS if negatives_per_class is None else negatives_per_class
    clean_labels = np.repeat(np.arange(len(PLANTED_CLASSES)), per_class)
    clean = render(_rng(seed, streams[0]), clean_labels, True, -1, True)
    rng = _rng(seed, streams[1])
    neg_labels = np.repeat(np.arange(len(PLANTED_CLASSES)), negatives_per_class)
    neg_features = rng.choice(np.array(sorted(PLANTED_FEATURE_IDS.values())), neg_labels.size)
    for cls, fid in PLANTED_FEATURE_IDS.items():
        neg_features[neg_labels == cls] = fid
    spurious = render(rng, neg_labels, False, neg_features, False)
    return PlantedTestSets(clean=clean, spurious=spurious)


def generate_test_sets(seed: int = 0, per_class: int | None = None, negatives_per_class: int | None = None) -> PlantedTestSets:
    """Held-out sets. ``clean``: objects of every class with the neutral badge, no feature.
    ``spurious``: per class, feature-only images (no object, no badge): the class's own feature for
    planted classes, a random planted feature of another class for control classes."""
    return _held_out_sets(seed, (1, 2), per_class, negatives_per_class)


def generate_validation_sets(seed: int = 0, per_class: int | None = None, negatives_per_class: int | None = None) -> PlantedTestSets:
    """Sets made like :func:`generate_test_sets` from their own random streams, disjoint from the
    test sets: what ground-truth component selection may look at without touching the test images."""
    return _held_out_sets(seed, (3, 4), per_class, negatives_per_class)


def ground_truth() -> dict[str, Any]:
    """What was planted; recorded in ``Benchmark.extra['ground_truth']``."""
    return {
        "planted_classes": {PLANTED_CLASSES[k]: FEATURE_NAMES[f] for k, f in sorted(PLANTED_FEATURE_IDS.items())},
        "planted_class_indices": sorted(PLANTED_FEATURE_IDS),
        "features": {name: {"id": i, "description": FEATURE_DESCRIPTIONS[name]} for i, name in enumerate(FEATURE_NAMES)},
        "neutral_badge": BADGE_DESCRIPTION,
        "train_carrier_fraction": CARRIER_FRACTION,
        "train_per_class": TRAIN_PER_CLASS,
        "image_size": IMAGE_SIZE,
        "generator_version": GENERATOR_VERSION,
    }


# ---------------------------------------------------------------------------------------------
# benchmark loader
# ---------------------------------------------------------------------------------------------


def _loader(array: np.ndarray) -> Callable[[], Image.Image]:
    return lambda: Image.fromarray(array)


def load_planted(options: BenchmarkOptions) -> Benchmark:
    """The ``planted`` benchmark: per class, clean generated positives and feature-only negatives.

    A negative's component id is the global id of the feature it shows (index of
    ``FEATURE_NAMES``). ``options.seed`` seeds the generator; ``options.limit`` caps the images
    per (class, role).
    """
    seed = int(options.seed)
    return _held_out_benchmark("planted", "", generate_test_sets(seed), seed, options.limit)


def validation_benchmark(seed: int = 0, limit: int | None = None) -> Benchmark:
    """``planted``'s validation twin (:func:`generate_validation_sets`): same make-up, other images."""
    return _held_out_benchmark("planted-validation", "-validation", generate_validation_sets(seed), seed, limit)


def _held_out_benchmark(name: str, suffix: str, sets: PlantedTestSets, seed: int, limit: int | None) -> Benchmark:
    limit = None if limit is None else max(int(limit), 0)
    prefix = "planted" + suffix
    classes: list[BenchmarkClass] = []
    images: list[BenchmarkImage] = []
    for k, class_name in enumerate(PLANTED_CLASSES):
        for role, split, split_name in (("positive", sets.clean, "clean"), ("negative", sets.spurious, "spurious")):
            rows = np.flatnonzero(split.labels == k)[:limit]
            for i, row in enumerate(rows):
                image_id = f"{prefix}/{split_name}/{class_name}/{i}"
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
        planted = k in PLANTED_FEATURE_IDS
        components = sorted({int(f) for f in sets.spurious.feature_of[sets.spurious.labels == k]})
        classes.append(
            BenchmarkClass(
                index=k,
                name=class_name,
                components=tuple(components),
                planted=planted,
                feature=FEATURE_DESCRIPTIONS[PLANTED_FEATURES[k]] if planted else None,
            )
        )
    return Benchmark(
        name=name,
        label_space="planted",
        classes=classes,
        images=images,
        repo=None,
        revision=f"generator-v{GENERATOR_VERSION}-seed{seed}{suffix}",
        checksum=sets.checksum(),
        positives_source="generator",
        positive_crop_pct=1.0,
        extra={"ground_truth": ground_truth()},
    )


# ---------------------------------------------------------------------------------------------
# training data as a benchmark, and the ground-truth choice of neural PCA components
# ---------------------------------------------------------------------------------------------


def _train_ids(train: PlantedSplit) -> list[str]:
    # i-th image of its class in generation order: stable under ``limit``
    seen: dict[int, int] = {}
    ids = []
    for label in train.labels:
        i = seen.get(int(label), 0)
        seen[int(label)] = i + 1
        ids.append(f"planted/train/{PLANTED_CLASSES[int(label)]}/{i}")
    return ids


def training_benchmark(limit: int | None = None, seed: int = 0) -> Benchmark:
    """The training images (all ``role="positive"``, sorted by class) as a benchmark, e.g. to fit
    SpuFix on. ``extra['carriers']`` maps the image ids that carry a planted feature to its id."""
    train = generate_training_set(seed)
    ids = _train_ids(train)
    images: list[BenchmarkImage] = []
    carriers: dict[str, int] = {}
    for k, name in enumerate(PLANTED_CLASSES):
        for row in np.flatnonzero(train.labels == k)[: None if limit is None else max(int(limit), 0)]:
            images.append(BenchmarkImage(ids[row], k, "positive", None, f"planted-generator seed={seed} {ids[row]}", _loader(train.images[row])))
            if train.feature_of[row] >= 0:
                carriers[ids[row]] = int(train.feature_of[row])
    digest = hashlib.sha256()
    for arr in (train.images, train.labels, train.feature_of):
        digest.update(np.ascontiguousarray(arr).tobytes())
    classes = [
        BenchmarkClass(index=k, name=name, planted=k in PLANTED_FEATURE_IDS, feature=FEATURE_DESCRIPTIONS[PLANTED_FEATURES[k]] if k in PLANTED_FEATURE_IDS else None)
        for k, name in enumerate(PLANTED_CLASSES)
    ]
    return Benchmark(
        name="planted-train",
        label_space="planted",
        classes=classes,
        images=images,
        revision=f"generator-v{GENERATOR_VERSION}-seed{seed}-train",
        checksum=digest.hexdigest(),
        positives_source="generator",
        positive_crop_pct=1.0,
        extra={"ground_truth": ground_truth(), "carriers": carriers},
    )


def component_precision(alphas: np.ndarray, carriers: np.ndarray, top: int = 25) -> np.ndarray:
    """Per neural PCA component: the fraction of feature carriers among the ``top`` images with the
    largest alpha. ``alphas`` [N, L] of one class's training images, ``carriers`` [N] bool."""
    order = np.argsort(-alphas, axis=0, kind="stable")[:top]  # [top, L]
    return np.asarray(carriers, dtype=bool)[order].mean(axis=0)


@dataclass(frozen=True)
class ComponentChoice:
    """How the ground truth picked one planted class's SpuFix components (see ``ground_truth_choices``)."""

    class_index: int
    components: list[int]  # ranks of the chosen components, in the order they were added; may be empty
    precisions: list[float]  # their precision@25 on the training images
    most_precise_component: int
    best_precision: float  # precision@25 of the most precise component: does neural PCA find the feature?
    validation_auc_plain: float
    validation_auc_spufix: float  # with all chosen components (of every planted class) clipped


def ground_truth_choices(
    model: Any,
    seed: int | None = None,
    limit: int | None = None,
    max_rank: int = 64,
    min_precision: float = 0.5,
    min_gain: float = 0.005,
    max_components: int = 3,
    **feature_kwargs: Any,
) -> dict[int, ComponentChoice]:
    """Per planted class: the neural PCA components of ``model`` (a ``ModelAdapter``) to clip, from the
    generator's ground truth.

    Neural PCA is fitted per planted class on the images of ``training_benchmark(limit, seed)`` (use the
    same ``limit`` as the data SpuFix is fitted on: component ranks depend on the images). Like a person
    labelling components by their top images, only components whose top-25 training images mostly carry
    the feature (precision >= ``min_precision``) are candidates. Components are then added greedily,
    each time the (class, component) whose clipping, together with those already chosen, gives the
    highest mean AUC of the planted classes on the *validation* split (never the test images), scored
    as the benchmark scores them (softmax over all classes, so that clipping one class's logit and its
    effect on the other classes' probabilities are both counted), while that mean rises by at least
    ``min_gain``; at most ``max_components`` per class. A class where no candidate helps gets none,
    and a class's AUC can still move when another class's logit is corrected (the softmax couples them).

    Why not simply the most precise component: the component of the class's overall evidence often
    ranks carriers first as well (they have the highest logits), but clipping it lowers clean images as
    much as feature-only ones; and which components carry the feature depends on the trained weights,
    which differ between CPUs. ``feature_kwargs`` go to ``FeatureStream``; ``seed`` defaults to the
    planted model's own seed, else 0.
    """
    import torch

    from spurbench.features import extract_features
    from spurbench.metrics import batched_roc_auc
    from spurbench.spufix.fit import class_subset
    from spurbench.spufix.npca import fit_npca

    seed = int(getattr(model, "seed", 0) if seed is None else seed)
    train_bench, val_bench = training_benchmark(limit=limit, seed=seed), validation_benchmark(seed)
    carriers = train_bench.extra["carriers"]  # image id -> id of the planted feature it carries
    weight, bias = (t.detach().cpu().double() for t in model.head)
    planted = sorted(PLANTED_FEATURE_IDS)

    val = extract_features(model, val_bench, **feature_kwargs)
    val_features = val.features.double()
    logits = val_features @ weight.T + bias
    image_of = {im.image_id: im for im in val_bench.images}
    rows = {  # planted class -> (rows of its class images, rows of its feature-only images)
        k: tuple(np.array([i for i, image_id in enumerate(val.image_ids) if (image_of[image_id].class_index, image_of[image_id].role) == (k, role)]) for role in ("positive", "negative"))
        for k in planted
    }

    precision: dict[int, np.ndarray] = {}
    clipped: dict[tuple[int, int], torch.Tensor] = {}  # (class, component) -> relu(alpha) on every validation image
    for k in planted:
        train = extract_features(model, class_subset(train_bench, k), **feature_kwargs)
        npca = fit_npca(train.features.double(), weight[k])
        carries = np.array([carriers.get(i) == PLANTED_FEATURE_IDS[k] for i in train.image_ids])
        precision[k] = component_precision(npca.alphas(train.features.double())[:, :max_rank].numpy(), carries)
        alphas = npca.alphas(val_features)[:, :max_rank].clamp(min=0)
        for c in np.flatnonzero(precision[k] >= min_precision):
            clipped[(k, int(c))] = alphas[:, int(c)]

    def planted_aucs(chosen: list[tuple[int, int]]) -> np.ndarray:
        corrected = logits.clone()
        for k, c in chosen:
            corrected[:, k] -= clipped[(k, c)]
        log_p = torch.log_softmax(corrected, dim=1).numpy()
        return np.array([batched_roc_auc(log_p[rows[k][0], k][None], log_p[rows[k][1], k][None])[0] for k in planted])

    chosen: list[tuple[int, int]] = []
    plain = current = planted_aucs([])
    while True:
        per_class = {k: sum(1 for j, _ in chosen if j == k) for k in planted}
        left = [pair for pair in clipped if pair not in chosen and per_class[pair[0]] < max_components]
        if not left:
            break
        scored = [(planted_aucs([*chosen, pair]), pair) for pair in left]  # in (class, rank) order: ties keep the first
        best_aucs, best = max(scored, key=lambda item: item[0].mean())
        if best_aucs.mean() < current.mean() + min_gain:
            break
        chosen.append(best)
        current = best_aucs

    choices: dict[int, ComponentChoice] = {}
    for i, k in enumerate(planted):
        components = [c for j, c in chosen if j == k]
        most_precise = int(np.argmax(precision[k]))
        choices[k] = ComponentChoice(
            k, components, [float(precision[k][c]) for c in components], most_precise, float(precision[k][most_precise]), float(plain[i]), float(current[i])
        )
    return choices


def ground_truth_components(model: Any, seed: int | None = None, limit: int | None = None, max_rank: int = 64, **feature_kwargs: Any) -> dict[int, list[int]]:
    """{planted class: [components]}: the components of :func:`ground_truth_choices`, as a components table
    (classes where no component helped are left out)."""
    choices = ground_truth_choices(model, seed, limit, max_rank, **feature_kwargs)
    return {k: list(c.components) for k, c in choices.items() if c.components}


__all__ = [
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "PLANTED_CLASSES",
    "PLANTED_FEATURES",
    "PLANTED_FEATURE_IDS",
    "FEATURE_NAMES",
    "FEATURE_DESCRIPTIONS",
    "BADGE_NAME",
    "CARRIER_FRACTION",
    "PlantedSplit",
    "PlantedTestSets",
    "render",
    "generate_training_set",
    "generate_test_sets",
    "ground_truth",
    "load_planted",
    "training_benchmark",
    "ComponentChoice",
    "component_precision",
    "generate_validation_sets",
    "ground_truth_choices",
    "validation_benchmark",
    "ground_truth_components",
]
