"""Benchmark label space -> model label space columns.

Label spaces are named by spurbench, not by the model zoo that shipped the weights:

    "imagenet-1k"          ILSVRC-2012, 1000 classes in the standard (sorted synset) order
    "imagenet-21k-google"  Google's ImageNet-21k, 21843 classes (timm: "imagenet-21k-goog")
    "imagenet-21k"         the fall11 release, 21841 classes (timm: "imagenet-22k")

The 21k maps are built from the synset lists timm ships, so every mapped column is
checked by its WordNet id rather than trusted from a hand-made table. One 1k class,
850 "teddy bear" (n04399382), is in neither 21k list; scoring it raises LabelSpaceError.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from spurbench.errors import LabelSpaceError

# spurbench label space -> (timm ImageNetInfo subset, number of classes)
IMAGENET_SPACES: dict[str, tuple[str, int]] = {
    "imagenet-1k": ("imagenet-1k", 1000),
    "imagenet-21k-google": ("imagenet-21k-goog", 21843),
    "imagenet-21k": ("imagenet-22k", 21841),
}
TIMM_SUBSET_TO_SPACE: dict[str, str] = {subset: space for space, (subset, _) in IMAGENET_SPACES.items()}
_NUM_CLASSES_TO_SPACE: dict[int, str] = {n: space for space, (_, n) in IMAGENET_SPACES.items()}


def imagenet_space(num_classes: int, prefix: str) -> str:
    """The ImageNet label space a head of this size uses, else ``f"{prefix}-{num_classes}"`` (not scorable)."""
    return _NUM_CLASSES_TO_SPACE.get(num_classes, f"{prefix}-{num_classes}")


@lru_cache(maxsize=None)
def _info(space: str):
    from timm.data import ImageNetInfo

    return ImageNetInfo(IMAGENET_SPACES[space][0])


def synsets(space: str) -> tuple[str, ...]:
    """WordNet ids of an ImageNet label space, in the order of its head's columns."""
    if space not in IMAGENET_SPACES:
        raise LabelSpaceError(f"label space {space!r} has no synset list; known: {', '.join(IMAGENET_SPACES)}")
    return tuple(_info(space).label_names())


@lru_cache(maxsize=None)
def imagenet_class_names(space: str) -> tuple[str, ...] | None:
    """Human-readable class names (WordNet lemmas, e.g. "tench, Tinca tinca"), or None for other spaces."""
    if space not in IMAGENET_SPACES:
        return None
    return tuple(_info(space).label_descriptions())


@lru_cache(maxsize=None)
def _map_1k_to(space: str) -> np.ndarray:
    index = {synset: k for k, synset in enumerate(synsets(space))}
    columns = np.array([index.get(s, -1) for s in synsets("imagenet-1k")], dtype=np.int64)
    columns.setflags(write=False)  # shared through the cache: callers must not edit it
    return columns


def imagenet_1k_to_21k(ordering: str) -> np.ndarray:
    """Column of each ImageNet-1k class in a 21k head (``ordering`` = "imagenet-21k-google" or "imagenet-21k").

    A read-only int64 array of length 1000; -1 where the 1k synset is not in that 21k list.
    """
    if ordering not in ("imagenet-21k-google", "imagenet-21k"):
        raise LabelSpaceError(f"no ImageNet-21k ordering {ordering!r}; choose imagenet-21k-google or imagenet-21k")
    return _map_1k_to(ordering)


def class_columns(benchmark_space: str, model_space: str, class_indices: Sequence[int], num_classes: int) -> list[int]:
    """Column of the model's head that scores each benchmark class; LabelSpaceError if there is none."""
    if benchmark_space == model_space:
        bad = [k for k in class_indices if not 0 <= k < num_classes]
        if bad:
            raise LabelSpaceError(f"benchmark class {bad[0]} is outside the model's {num_classes}-class label space {model_space!r}")
        return [int(k) for k in class_indices]
    if benchmark_space == "imagenet-1k" and model_space in ("imagenet-21k-google", "imagenet-21k"):
        table = imagenet_1k_to_21k(model_space)
        bad = [k for k in class_indices if not 0 <= k < len(table)]
        if bad:
            raise LabelSpaceError(f"benchmark class {bad[0]} is outside the 1000-class label space 'imagenet-1k'")
        missing = [k for k in class_indices if table[k] < 0]
        if missing:
            k = missing[0]
            raise LabelSpaceError(
                f"model label space {model_space!r} has no map from benchmark label space {benchmark_space!r} "
                f"for class {k} ({synsets('imagenet-1k')[k]}): that synset is not in the {model_space} list"
            )
        columns = [int(table[k]) for k in class_indices]
        if max(columns, default=-1) >= num_classes:
            raise LabelSpaceError(f"model head has {num_classes} classes, fewer than label space {model_space!r} needs")
        return columns
    raise LabelSpaceError(f"model label space {model_space!r} has no map from benchmark label space {benchmark_space!r}")
