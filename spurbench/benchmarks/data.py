"""What a benchmark *is*: its classes and images, as a plugin's ``load`` hands them over, and the
options every benchmark takes (the plugin contract, ``base.py``, its capabilities and the records
beside it build on these; they import nothing of those).

A benchmark is a list of classes and a flat list of images. For each class k:
  * positives: images showing class k (e.g. its ImageNet validation images);
  * negatives: images showing only a spurious feature of class k, never the object,
    each tagged with its spurious-component id.
Images are opened lazily; a file that cannot be decoded raises ``DataError`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from spurbench.benchmarks.checks import check_protocols
from spurbench.errors import DataError
from spurbench.protocols import EvalProtocol

if TYPE_CHECKING:
    import torch


class BenchmarkOptions(BaseModel):
    """Options every benchmark takes; a plugin subclasses this with its own fields. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    limit: PositiveInt | None = None  # at most this many images per (class, role); for smoke runs
    token: str | bool | None = Field(default=None, exclude=True)  # Hub token for gated data; never recorded


Role = Literal["positive", "negative"]
ROLES: tuple[Role, Role] = ("positive", "negative")


@dataclass(frozen=True)
class BenchmarkClass:
    """One class of a benchmark: its index in the label space, its name, and what the reports know of it."""

    index: int  # class index in the benchmark's label space (e.g. the ImageNet-1k index)
    name: str  # human-readable, shown in reports and boards
    components: tuple[int, ...] = ()  # spurious-component ids of this class's negatives
    group: str | None = None  # a class group the reports compare (e.g. classes with a seeded feature vs control classes)
    feature: str | None = None  # short description of the spurious feature, when known


@dataclass(frozen=True)
class BenchmarkImage:
    """One image of a benchmark, opened lazily: a class image (role "positive") or a spurious-only image ("negative")."""

    image_id: str  # unique and stable across runs; keys per-image results and the feature cache
    class_index: int  # the class it is scored for (a spurious-only image: the class whose spurious feature it shows)
    role: Role  # "positive": shows the class; "negative": shows only a spurious feature of it, never the object
    component: int | None  # spurious component (negatives), None for positives
    origin: str  # file path / parquet row / generator seed: named in errors
    loader: Callable[[], Image.Image] = field(repr=False, compare=False)  # returns the PIL image; called when the image is read
    # A views benchmark's names of what the model sees of this image (e.g. "clean", "watermark"): each is
    # one row of features, rendered from one decode of the image by ``Benchmark.render_views``.
    views: tuple[str, ...] = ()

    def open(self) -> Image.Image:
        """Decode the image as RGB, or raise a one-line DataError naming its origin."""
        try:
            image = self.loader()
            image.load()
            return image if image.mode == "RGB" else image.convert("RGB")
        except DataError:
            raise
        except Exception as exc:  # PIL raises many types for truncated / non-image data
            raise DataError(f"corrupt image {self.origin}: {type(exc).__name__}: {exc}") from None


@dataclass
class Benchmark:
    """What a plugin's ``load`` returns: the classes and images of one benchmark (or split) and its provenance."""

    name: str  # registry name of the benchmark (or of a split of it)
    label_space: str  # label space of class_index, e.g. "imagenet-1k"
    classes: list[BenchmarkClass]
    images: list[BenchmarkImage]
    repo: str | None = None  # Hub dataset repo or local path the negatives came from
    revision: str | None = None  # pinned revision (Hub commit / generator version)
    checksum: str | None = None  # content checksum of the negatives
    positives_source: str | None = None  # where the positives came from (Hub dataset, local dir, generator)
    # How its images become model inputs, per --protocol name: stated, never defaulted (spurbench.protocols)
    protocols: dict[str, EvalProtocol] = field(default_factory=dict)
    component_names: dict[int, str] = field(default_factory=dict)  # short names of spurious components, when known
    # Per class, the names of its own components' features, where a class's components are its own (a mined
    # benchmark's ranks): class -> component -> name, as people gave them when labelling
    class_component_names: dict[int, dict[int, str]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # provenance copied into results; never read back
    # The registry name of the plugin that loaded it, where ``name`` is not that name (a plugin whose
    # benchmarks are named by their data, so that two of them keep apart in results and boards).
    plugin: str | None = None
    # A views benchmark: the image's views from its preprocessed, un-normalised input tensor [3, H, W]
    # in [0, 1] under the run's protocol, one per name of ``image.views``, in that order. It runs in the
    # data-loader workers.
    render_views: Callable[[BenchmarkImage, torch.Tensor, EvalProtocol], list[torch.Tensor]] | None = field(default=None, repr=False)
    views_key: str | None = None  # what else changes the rendered views (a font's digest, a noise scheme); keys the feature cache

    def __post_init__(self) -> None:
        check_protocols(self.name, self.protocols)

    def view_rows(self) -> list[tuple[int, str]]:
        """(image position, view name) of every feature row of a views benchmark, image by image."""
        return [(i, view) for i, im in enumerate(self.images) for view in im.views]

    def class_by_index(self) -> dict[int, BenchmarkClass]:
        return {c.index: c for c in self.classes}

    def counts(self) -> dict[str, int]:
        pos = sum(1 for im in self.images if im.role == "positive")
        return {"classes": len(self.classes), "positives": pos, "negatives": len(self.images) - pos}


def images_by_class(records: Sequence[tuple[int, str]]) -> dict[int, dict[Role, np.ndarray]]:
    """Row numbers of each (class, role) in a sequence of ``(class_index, role)``: the one grouping that
    ``evaluate`` and ``leaderboard verify`` both score from."""
    rows: dict[int, dict[Role, list[int]]] = {}
    for row, (class_index, role) in enumerate(records):
        rows.setdefault(class_index, {"positive": [], "negative": []})[role].append(row)  # type: ignore[index]
    return {k: {role: np.asarray(v, dtype=np.int64) for role, v in roles.items()} for k, roles in rows.items()}


__all__ = ["ROLES", "Benchmark", "BenchmarkClass", "BenchmarkImage", "BenchmarkOptions", "Role", "images_by_class"]
