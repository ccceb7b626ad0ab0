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

(About 470 lines on purpose: the renderer's steps share one set of geometry constants, and splitting
them apart would scatter the design notes above from the numbers they explain.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

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

# The unlabelled mining pool (:func:`generate_pool`), 2000 images from its own random stream.
POOL_STREAM = 5  # streams 0-4: training, test clean/spurious, validation clean/spurious
CARRIER_STREAM = 6  # held-out objects carrying a planted feature, with their masks (planted-salient)
CARRIERS_PER_CLASS = 50
POOL_CLEAN_PER_CLASS = 100  # objects of every class with the neutral badge, no feature (1000)
POOL_CARRIERS_PER_CLASS = 120  # objects of each planted class carrying its own feature (360)
POOL_FEATURE_ONLY_PER_FEATURE = 100  # each planted feature on a background, no object, no badge (300)
POOL_CONTROL_CARRIERS_PER_FEATURE = 30  # a control class's object carrying a planted feature (90)
POOL_BACKGROUNDS = 250  # plain backgrounds: no object, no feature, no badge
POOL_KINDS: tuple[str, ...] = ("clean", "carrier", "control-carrier", "feature-only", "background")

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


def generate_carrier_set(seed: int = 0, per_class: int | None = None) -> PlantedSplit:
    """Held-out objects of every class that each carry a planted feature, from their own stream
    ``CARRIER_STREAM``: a planted class its own feature, a control class a random planted feature of
    another class. ``object_mask`` and ``feature_mask`` are the exact regions of both."""
    rng = _rng(seed, CARRIER_STREAM)
    per_class = CARRIERS_PER_CLASS if per_class is None else per_class
    labels = np.repeat(np.arange(len(PLANTED_CLASSES)), per_class)
    features = rng.choice(np.array(sorted(PLANTED_FEATURE_IDS.values())), labels.size)
    for cls, fid in PLANTED_FEATURE_IDS.items():
        features[labels == cls] = fid
    return render(rng, labels, True, features, False)


def _pool_layout() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kind index into POOL_KINDS, labels, has_object, feature_of), unshuffled, controls' classes unset."""
    kinds, labels, feature_of = [], [], []

    def add(kind: str, n: int, label: int, feature: int) -> None:
        kinds.append(np.full(n, POOL_KINDS.index(kind)))
        labels.append(np.full(n, label))
        feature_of.append(np.full(n, feature))

    for cls in range(len(PLANTED_CLASSES)):
        add("clean", POOL_CLEAN_PER_CLASS, cls, -1)
    for cls, fid in sorted(PLANTED_FEATURE_IDS.items()):
        add("carrier", POOL_CARRIERS_PER_CLASS, cls, fid)
        add("control-carrier", POOL_CONTROL_CARRIERS_PER_FEATURE, -1, fid)
        add("feature-only", POOL_FEATURE_ONLY_PER_FEATURE, cls, fid)  # label: the class it is a negative of
    add("background", POOL_BACKGROUNDS, -1, -1)
    kind = np.concatenate(kinds).astype(np.int64)
    has_object = np.isin(kind, [POOL_KINDS.index(k) for k in ("clean", "carrier", "control-carrier")])
    return kind, np.concatenate(labels).astype(np.int64), has_object, np.concatenate(feature_of).astype(np.int64)


def generate_pool(seed: int = 0) -> PlantedSplit:
    """An unlabelled mining pool (shuffled) from its own random stream ``POOL_STREAM``, disjoint from
    every other split: like the unlabelled images Spurious ImageNet was mined from. Per kind
    (:func:`pool_kinds`; 2000 images):

      * ``clean``: ``POOL_CLEAN_PER_CLASS`` (100) objects of every class, with the neutral badge and no
        feature (as the clean test images): 1000;
      * ``carrier``: ``POOL_CARRIERS_PER_CLASS`` (120) objects of each planted class carrying that
        class's own feature instead of the badge (as its training carriers): 360;
      * ``control-carrier``: ``POOL_CONTROL_CARRIERS_PER_FEATURE`` (30) per planted feature, an object of
        a random control class carrying it (harder negatives: feature without the class's object, but
        with some other object): 90;
      * ``feature-only``: ``POOL_FEATURE_ONLY_PER_FEATURE`` (100) per planted feature, on a background,
        no object, no badge (as the spurious test images): 300;
      * ``background``: ``POOL_BACKGROUNDS`` (250) plain backgrounds, no object, no feature, no badge.

    So each planted class's feature shows up on more images of its object (120) than alone (100): the
    images a component ranks highest still need the human check for the object. ``labels`` is the
    object's class, the feature's planted class for feature-only images, and -1 for backgrounds.
    """
    rng = _rng(seed, POOL_STREAM)
    kind, labels, has_object, feature_of = _pool_layout()
    controls = np.array([k for k in range(len(PLANTED_CLASSES)) if k not in PLANTED_FEATURE_IDS])
    control_rows = kind == POOL_KINDS.index("control-carrier")
    labels[control_rows] = rng.choice(controls, int(control_rows.sum()))
    order = rng.permutation(kind.size)
    labels, has_object, feature_of, kind = labels[order], has_object[order], feature_of[order], kind[order]
    return render(rng, labels, has_object, feature_of, kind == POOL_KINDS.index("clean"))


def pool_kinds(split: PlantedSplit) -> np.ndarray:
    """The kind (a name of ``POOL_KINDS``) of every image of a pool from :func:`generate_pool`."""
    planted = np.array([PLANTED_FEATURE_IDS.get(int(k), -2) for k in split.labels]) == split.feature_of
    kind = np.select(
        [split.has_object & ~split.carries_feature, split.has_object & planted, split.has_object, split.carries_feature],
        list(POOL_KINDS[:4]),
        POOL_KINDS[4],
    )
    return kind.astype(object)


def pool_checksum(split: PlantedSplit) -> str:
    """sha256 over a pool's arrays (images, labels, features, objects)."""
    digest = hashlib.sha256()
    for arr in (split.images, split.labels, split.feature_of, split.has_object):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


def pool_mix() -> dict[str, int]:
    """Images per kind of :func:`generate_pool` (from the POOL_* constants)."""
    kind = _pool_layout()[0]
    return {name: int((kind == i).sum()) for i, name in enumerate(POOL_KINDS)}


def ground_truth() -> dict[str, Any]:
    """What was planted, as facts recorded in every result (``benchmark.extra``)."""
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


__all__ = [
    "BADGE_NAME",
    "CARRIER_FRACTION",
    "FEATURE_DESCRIPTIONS",
    "FEATURE_NAMES",
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "PLANTED_CLASSES",
    "PLANTED_FEATURES",
    "PLANTED_FEATURE_IDS",
    "POOL_BACKGROUNDS",
    "POOL_CARRIERS_PER_CLASS",
    "POOL_CLEAN_PER_CLASS",
    "POOL_CONTROL_CARRIERS_PER_FEATURE",
    "POOL_FEATURE_ONLY_PER_FEATURE",
    "POOL_KINDS",
    "POOL_STREAM",
    "CARRIER_STREAM",
    "generate_carrier_set",
    "PlantedSplit",
    "PlantedTestSets",
    "generate_pool",
    "generate_test_sets",
    "generate_training_set",
    "generate_validation_sets",
    "ground_truth",
    "pool_checksum",
    "pool_kinds",
    "pool_mix",
    "render",
]
