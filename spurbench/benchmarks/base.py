"""The benchmark contract.

A benchmark is a list of classes and a flat list of images. For each class k:
  * positives: images showing class k (ImageNet-val images for Spurious ImageNet);
  * negatives: images showing only a spurious feature of class k, never the object,
    each tagged with its spurious-component id.
Images are opened lazily; a file that cannot be decoded raises ``DataError`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from PIL import Image

from spurbench.errors import DataError

Role = Literal["positive", "negative"]


@dataclass(frozen=True)
class BenchmarkClass:
    index: int  # class index in the benchmark's label space (ImageNet-1k index for Spurious ImageNet)
    name: str
    components: tuple[int, ...] = ()  # spurious-component ids of this class's negatives
    planted: bool | None = None  # planted benchmark only: does this class carry a planted feature?
    feature: str | None = None  # short description of the spurious feature, when known


@dataclass(frozen=True)
class BenchmarkImage:
    image_id: str  # unique and stable across runs; keys per-image results and the feature cache
    class_index: int
    role: Role
    component: int | None  # spurious component (negatives), None for positives
    origin: str  # file path / parquet row / generator seed: named in errors
    loader: Callable[[], Image.Image] = field(repr=False, compare=False)

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
    name: str  # registry name, e.g. "planted" or "spurious-imagenet"
    label_space: str  # label space of class_index, e.g. "imagenet-1k" or "planted"
    classes: list[BenchmarkClass]
    images: list[BenchmarkImage]
    repo: str | None = None  # Hub dataset repo or local path the negatives came from
    revision: str | None = None  # pinned revision (Hub commit / generator version)
    checksum: str | None = None  # content checksum of the negatives
    positives_source: str | None = None  # where the positives came from (Hub dataset, local dir, generator)
    # The paper protocol resizes positives to size/crop_pct and center-crops (ImageNet val: 224/256).
    # A generated benchmark whose images already have the model's size sets 1.0.
    positive_crop_pct: float = 224 / 256
    extra: dict[str, Any] = field(default_factory=dict)  # benchmark-specific facts recorded in results

    def class_by_index(self) -> dict[int, BenchmarkClass]:
        return {c.index: c for c in self.classes}

    def counts(self) -> dict[str, int]:
        pos = sum(1 for im in self.images if im.role == "positive")
        return {"classes": len(self.classes), "positives": pos, "negatives": len(self.images) - pos}


@dataclass
class BenchmarkOptions:
    """Everything a benchmark loader may take from the CLI / API; each loader ignores what it does not use."""

    data_dir: str | None = None  # local copy of the negatives (upstream folder layout or a local dataset snapshot)
    imagenet_val: str | None = None  # local ILSVRC2012 val folder for the positives
    dataset_repo: str | None = None  # Hub dataset repo of the negatives
    revision: str | None = None  # pinned Hub revision
    limit: int | None = None  # at most this many images per (class, role); for smoke runs
    token: str | bool | None = None  # Hub token for gated data
    seed: int = 0  # planted benchmark generator seed
