"""A tiny Salient ImageNet in the authors' on-disk formats, with its ground truth.

Written like upstream (singlasahil14/salient_imagenet): ``<root>/<wnid>/image_names_map.csv``
(header row of feature indices, one column of train stems per feature, no index column, the same
number of stems in every column), ``<root>/<wnid>/feature_<f>/<stem>.JPEG`` (224x224 8-bit
grayscale soft masks), ``<root>/wordnet_dict.py`` ({class index: wnid} literal), the worker
annotations ``discover_spurious_features.csv`` with upstream's header (by default where the authors'
repository keeps it, ``<root>/../mturk_results/``), and ILSVRC-style train JPEGs
``<train_root>/<wnid>/<stem>.JPEG`` cut from real photos (skimage.data).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from spurbench.label_spaces import synsets

ANNOTATION_HEADER = (
    "WorkerId",
    "Input.wordnet_id",
    "Input.class_index",
    "Input.feature_index",
    "Input.feature_rank",
    "Answer.main",
    "Answer.confidence",
    "Answer.reasons",
)
WORKERS = 5
MASK_SIZE = 224
TRAIN_SIZE = (300, 260)  # width, height: not 224, so Resize(256)+CenterCrop(224) has work to do
STEMS_PER_FEATURE = 3
BLUR = 3.0  # soft edges, as activation maps have; the interior stays at 255

# (ImageNet-1k class index, ((feature index, spurious votes of 5), ...)): every class has a core and
# a spurious feature, and the votes sit on both sides of the 3-of-5 line (2/5 core, 3/5 spurious).
DEFAULT_CLASSES: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = (
    (1, ((59, 0), (686, 3), (701, 2))),  # goldfish
    (309, ((1941, 4), (595, 1))),  # bee
    (817, ((12, 5), (1200, 2), (2047, 3))),  # sports car
)


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from skimage import data

    return (data.coffee(), data.astronaut(), data.chelsea())


def _train_image(rng: np.random.Generator, n: int) -> Image.Image:
    photo = _photos()[n % 3]
    w, h = TRAIN_SIZE
    top = int(rng.integers(0, photo.shape[0] - h + 1))
    left = int(rng.integers(0, photo.shape[1] - w + 1))
    return Image.fromarray(np.ascontiguousarray(photo[top : top + h, left : left + w]))


def _mask(box: tuple[int, int, int, int], shape: str) -> Image.Image:
    canvas = Image.new("L", (MASK_SIZE, MASK_SIZE), 0)
    draw = ImageDraw.Draw(canvas)
    (draw.ellipse if shape == "disc" else draw.rectangle)(box, fill=255)
    return canvas.filter(ImageFilter.GaussianBlur(BLUR))


def _box(rng: np.random.Generator) -> tuple[int, int, int, int]:
    w, h = (int(v) for v in rng.integers(60, 110, size=2))
    x0, y0 = int(rng.integers(8, MASK_SIZE - w - 8)), int(rng.integers(8, MASK_SIZE - h - 8))
    return (x0, y0, x0 + w, y0 + h)


def write_tiny_salient(
    root: Path,
    train_root: Path,
    *,
    classes: Sequence[tuple[int, Sequence[tuple[int, int]]]] = DEFAULT_CLASSES,
    seed: int = 0,
    annotations: Path | None = None,
) -> dict[str, Any]:
    """Write the layout; returns its ground truth::

        {"root", "train_root", "annotations": Path,
         "classes": {k: {"wnid", "features": {f: {"kind", "votes_spurious", "votes_total", "rank",
                                                  "stems": tuple, "shape": "disc" | "rect"}},
                         "images": {stem: (f, ...)}}},          # union over features, feature order
         "boxes": {(k, f, stem): (x0, y0, x1, y1)},              # the 255 region of each mask
         "masks": {(k, f, stem): Path}, "train_images": {(k, stem): Path}}

    Stems of consecutive features overlap (feature j lists pool[j : j + 3]), so some images carry
    masks of two or three features, of the same or of different kinds.
    """
    root, train_root = Path(root), Path(train_root)
    annotations = Path(annotations) if annotations is not None else root.parent / "mturk_results" / "discover_spurious_features.csv"
    rng = np.random.default_rng(seed)
    order = synsets("imagenet-1k")
    rows: list[dict[str, Any]] = []
    truth: dict[str, Any] = {
        "root": root,
        "train_root": train_root,
        "annotations": annotations,
        "classes": {},
        "boxes": {},
        "masks": {},
        "train_images": {},
    }
    photo_n = 0
    for k, features in classes:
        wnid = order[k]
        folder = root / wnid
        folder.mkdir(parents=True, exist_ok=True)
        numbers = rng.choice(np.arange(1, 20000), size=len(features) + STEMS_PER_FEATURE - 1, replace=False)
        pool = [f"{wnid}_{int(n)}" for n in numbers]
        entry: dict[str, Any] = {"wnid": wnid, "features": {}, "images": {}}
        columns: dict[str, list[str]] = {}
        for j, (f, spurious) in enumerate(features):
            stems = tuple(pool[j : j + STEMS_PER_FEATURE])
            shape = "disc" if j % 2 == 0 else "rect"
            entry["features"][f] = {
                "kind": "spurious" if spurious >= 3 else "core",
                "votes_spurious": spurious,
                "votes_total": WORKERS,
                "rank": j + 1,
                "stems": stems,
                "shape": shape,
            }
            columns[str(f)] = list(stems)
            (folder / f"feature_{f}").mkdir(exist_ok=True)
            for stem in stems:
                box = _box(rng)
                path = folder / f"feature_{f}" / f"{stem}.JPEG"
                _mask(box, shape).save(path, "JPEG", quality=95)
                truth["boxes"][(k, f, stem)] = box
                truth["masks"][(k, f, stem)] = path
                entry["images"].setdefault(stem, ())
                entry["images"][stem] += (f,)
            # 5 workers; spurious votes alternate between the two spurious answers, as real ones mix.
            workers = rng.choice(np.arange(1, 300), size=WORKERS, replace=False)
            answers = ["separate_object" if i % 2 == 0 else "background" for i in range(spurious)] + ["main_object"] * (WORKERS - spurious)
            for worker, answer in zip(workers, rng.permutation(answers)):
                rows.append(
                    {
                        "WorkerId": int(worker),
                        "Input.wordnet_id": wnid,
                        "Input.class_index": k,
                        "Input.feature_index": f,
                        "Input.feature_rank": j + 1,
                        "Answer.main": str(answer),
                        "Answer.confidence": float(rng.integers(3, 6)),
                        "Answer.reasons": f"focus is on the {'main object' if answer == 'main_object' else 'surroundings'}",
                    }
                )
        pd.DataFrame(columns).to_csv(folder / "image_names_map.csv", index=False)
        entry["images"] = dict(sorted(entry["images"].items()))
        truth["classes"][k] = entry
        train_dir = train_root / wnid
        train_dir.mkdir(parents=True, exist_ok=True)
        for stem in entry["images"]:
            path = train_dir / f"{stem}.JPEG"
            _train_image(rng, photo_n).save(path, "JPEG", quality=90)
            photo_n += 1
            truth["train_images"][(k, stem)] = path
    annotations.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(ANNOTATION_HEADER)).to_csv(annotations, index=False)
    (root / "wordnet_dict.py").write_text(repr(dict(enumerate(order))))
    return truth
