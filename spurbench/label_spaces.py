"""ImageNet metadata, in one place: synsets, class names, label spaces and the 1k -> 21k column maps.

Label spaces are named by spurbench, not by the model zoo that shipped the weights:

    "imagenet-1k"          ILSVRC-2012, 1000 classes in the standard (sorted synset) order
    "imagenet-21k-google"  Google's ImageNet-21k, 21843 classes (timm: "imagenet-21k-goog")
    "imagenet-21k"         the fall11 release, 21841 classes (timm: "imagenet-22k")

Synsets come from the lists timm ships, so every mapped column is checked by its WordNet id rather
than trusted from a hand-made table. One 1k class, 850 "teddy bear" (n04399382), is in neither 21k
list; scoring it raises LabelSpaceError.

Class names: for ImageNet-1k, open_clip's ``IMAGENET_CLASSNAMES`` and nothing else. Why that source:
its 1000 names are short, readable and unique, which timm's WordNet lemmas are not ("crane" and
"maillot" are two classes each, and the first lemma of a synset is often obscure); and they are the
names open_clip's zero-shot heads are built from, so results, boards and zero-shot prompts name a
class the same way. The 21k spaces have only timm's WordNet descriptions, used for them.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, overload

import numpy as np

from spurbench.errors import DataError, LabelSpaceError

NUM_CLASSES_1K = 1000
# spurbench label space -> (timm ImageNetInfo subset, number of classes)
IMAGENET_SPACES: dict[str, tuple[str, int]] = {
    "imagenet-1k": ("imagenet-1k", 1000),
    "imagenet-21k-google": ("imagenet-21k-goog", 21843),
    "imagenet-21k": ("imagenet-22k", 21841),
}
TIMM_SUBSET_TO_SPACE: dict[str, str] = {subset: space for space, (subset, _) in IMAGENET_SPACES.items()}
_NUM_CLASSES_TO_SPACE: dict[int, str] = {n: space for space, (_, n) in IMAGENET_SPACES.items()}
_TIMM_SYNSET_FILES = {
    "imagenet-1k": "imagenet_synsets.txt",
    "imagenet-21k-google": "imagenet21k_goog_synsets.txt",
    "imagenet-21k": "imagenet22k_synsets.txt",
}


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing it (timm and open_clip import
    torch: seconds per process)."""
    spec = importlib.util.find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations)), *parts) if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise RuntimeError(f"{package} does not ship {'/'.join(parts)} any more; spurbench needs a matching {package} version")
    return path


@functools.cache
def synsets(space: str = "imagenet-1k") -> tuple[str, ...]:
    """WordNet ids of an ImageNet label space, in the order of its head's columns."""
    if space not in IMAGENET_SPACES:
        raise LabelSpaceError(f"label space {space!r} has no synset list; known: {', '.join(IMAGENET_SPACES)}")
    path = _package_file("timm", "data", "_info", _TIMM_SYNSET_FILES[space])
    found = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if len(found) != IMAGENET_SPACES[space][1]:
        raise RuntimeError(f"{path}: expected {IMAGENET_SPACES[space][1]} synsets, found {len(found)}")
    return found


@functools.lru_cache(maxsize=1)
def _open_clip_names() -> tuple[str, ...]:
    # Read the literal without importing open_clip (which imports torch).
    path = _package_file("open_clip", "zero_shot_metadata.py")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "IMAGENET_CLASSNAMES" for t in node.targets):
            names = tuple(ast.literal_eval(node.value))
            if len(names) == NUM_CLASSES_1K:
                return names
    raise RuntimeError(f"{path}: no list of {NUM_CLASSES_1K} IMAGENET_CLASSNAMES")


@overload
def class_names(space: Literal["imagenet-1k"] = ...) -> tuple[str, ...]: ...
@overload
def class_names(space: str) -> tuple[str, ...] | None: ...
def class_names(space: str = "imagenet-1k") -> tuple[str, ...] | None:
    """Class names of an ImageNet label space in column order (see the module docstring), or None for
    a label space that is not ImageNet's."""
    return _class_names(space)


@functools.cache
def _class_names(space: str) -> tuple[str, ...] | None:
    if space not in IMAGENET_SPACES:
        return None
    if space == "imagenet-1k":
        return _open_clip_names()
    path = _package_file("timm", "data", "_info", "imagenet_synset_to_lemma.txt")
    lemmas = dict(line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)
    return tuple(lemmas.get(s, s).strip() for s in synsets(space))


def imagenet_space(num_classes: int, prefix: str) -> str:
    """The ImageNet label space a head of this size uses, else ``f"{prefix}-{num_classes}"`` (not scorable)."""
    return _NUM_CLASSES_TO_SPACE.get(num_classes, f"{prefix}-{num_classes}")


def check_classes(class_indices: Iterable[int]) -> list[int]:
    """Sorted distinct ImageNet-1k class indices; a DataError for one outside 0-999."""
    classes = sorted({int(k) for k in class_indices})
    bad = [k for k in classes if not 0 <= k < NUM_CLASSES_1K]
    if bad:
        raise DataError(f"ImageNet class index {bad[0]} is outside 0-999")
    return classes


def describe_class(k: int) -> str:
    """``n01440764, tench``: how errors name an ImageNet-1k class."""
    return f"{synsets()[k]}, {class_names()[k]}"


@functools.cache
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


def maps_to(benchmark_space: str, model_space: str) -> bool:
    """Whether a model of ``model_space`` can score a benchmark of ``benchmark_space`` (see ``class_columns``)."""
    return benchmark_space == model_space or (benchmark_space == "imagenet-1k" and model_space in ("imagenet-21k-google", "imagenet-21k"))


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
