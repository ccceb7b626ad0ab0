"""Records a benchmark plugin hands to the rest of spurbench: what a published revision contains
(for ``leaderboard verify``), a generated benchmark's ground truth, a generated pool's truth, and one
verified mined image (for ``mine export``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spurbench.benchmarks.data import Benchmark
from spurbench.errors import DataError


@dataclass(frozen=True)
class Reference:
    """What a published benchmark revision contains, for ``leaderboard verify``: its checksum and its
    images (id -> (class, role)), or, where the images cannot be listed offline, the counts."""

    name: str
    revision: str
    checksum: str
    images: dict[str, tuple[int, str]] | None
    num_classes: int | None = None
    positives_per_class: int | None = None
    negatives_per_class: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # what else the plugin's ``check_views`` needs
    groups: dict[int, str | None] | None = None  # class -> its group, where the benchmark knows them (verify compares)
    checksum_prefix: bool = False  # ``checksum`` is a prefix the result's checksum must start with (a revision named by its checksum)

    def accepts(self, checksum: str | None) -> bool:
        """Whether a result's benchmark checksum is this revision's."""
        if not checksum:
            return False
        return checksum.startswith(self.checksum) if self.checksum_prefix else checksum == self.checksum


@dataclass(frozen=True)
class GroundTruth:
    """What a generated benchmark knows for certain about its spurious features."""

    train: Benchmark  # the training images (role "positive"), sorted by class
    validation: Benchmark  # a held-out twin of the benchmark, disjoint from its test images
    features: dict[int, int]  # class -> id of the spurious feature seeded into its training images
    carriers: dict[str, int]  # training image id -> id of the seeded feature it carries

    def __post_init__(self) -> None:
        # Checked when a plugin hands it over: a split without a seeded class's images otherwise
        # surfaced deep in the SpuFix demo as a numpy IndexError on an empty index array.
        name = self.validation.name
        bad = [k for k in self.features if isinstance(k, bool) or not isinstance(k, int)]
        if bad:
            raise DataError(f"ground truth of {name!r}: seeded class {bad[0]!r} is not a class index")
        for split, role, what in (
            (self.validation, "positive", "class images"),
            (self.validation, "negative", "spurious-only images"),
            (self.train, "positive", "training images"),
        ):
            have = {im.class_index for im in split.images if im.role == role}
            missing = sorted(k for k in self.features if k not in have)
            if missing:
                raise DataError(
                    f"ground truth of {name!r}: its {split.name!r} split has no {what} of seeded class {missing[0]} (seeded classes: {sorted(self.features)})"
                )


@dataclass
class PoolTruth:
    """What a generated mining pool holds, per image id: which class's object (None: no object) and which spurious feature (None: none)."""

    objects: dict[str, int | None]
    features: dict[str, int | None]


@dataclass(frozen=True)
class MinedImage:
    """One verified image of a mined benchmark, as `mine export` hands it to the plugin that writes the folder."""

    class_index: int
    component: int  # the spurious component (discovery rank) it was mined for
    pool_image_id: str  # its id in the pool
    source: str  # where it came from (a file path, or a generator)
    digest: str  # the pool file's digest as mining recorded it
    suffix: str  # file extension with the dot, e.g. ".png"
    read: Callable[[], bytes] = field(repr=False, compare=False)  # the bytes to store (the pool file's bytes, never re-encoded for files)
    verdicts: dict[str, int] = field(default_factory=dict)  # labelers' verdicts, e.g. {"absent": 2, "present": 0, "unsure": 0}


__all__ = ["GroundTruth", "MinedImage", "PoolTruth", "Reference"]
