"""What a benchmark plugin can do beyond the core contract (``base.BenchmarkPlugin``: options, load,
reference, the models it scores), one small capability each. A plugin names its capabilities before
its base class, so that its surface reads at a glance::

    class Generated(TrainingData, GroundTruthSource, MinesPools, GivesPositives, BenchmarkPlugin): ...

``isinstance(plugin, TrainingData)`` says whether a plugin has one; :func:`require` hands it on or
refuses in one line. ``BenchmarkPlugin`` itself has none of these methods: a caller asks for the
capability, and where a plugin without it has an answer (no watched classes, no pictures, the group
means), the caller gives that answer itself. A plugin that defines a capability's methods without
naming the capability has it too (checked by the methods it defines, as ``collections.abc`` does), so
plugins written before the capabilities were split out keep working; such a plugin inherits none of
the capability's class attributes, so callers read those with :func:`stated`."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from PIL import Image

from spurbench.benchmarks.data import Benchmark, BenchmarkClass, BenchmarkImage, BenchmarkOptions
from spurbench.benchmarks.records import GroundTruth, MinedImage, PoolTruth, Reference
from spurbench.benchmarks.view_scoring import ViewMetric, ViewScores, ViewTable
from spurbench.errors import SpurbenchError

# What ``require`` answers for a plugin without the capability, per method asked for (words users see).
REFUSALS = {
    "training_split": "benchmark {name!r} has no training split",
    "mining_pool": "benchmark {name!r} generates no mining pool; pass --pool DIR",
    "positives": "benchmark {name!r} provides no positives for other benchmarks",
    "write_mined": "benchmark {name!r} does not write mined benchmarks",
    "build_dataset": "benchmark {name!r} has no dataset to build",
    "push_dataset": "benchmark {name!r} has no dataset to publish",
    "download_dataset": "benchmark {name!r} has no dataset to download",
    "check_views": "benchmark {name!r} does not check views",
    "view_metrics": "benchmark {name!r} is not a views benchmark",
    "ground_truth": "benchmark {name!r} has no ground truth",
}


def _defines(klass: type, method: str) -> bool:
    """Whether ``klass`` or a base implements ``method``: not the capabilities here, which declare it."""
    return any(method in vars(base) and base.__module__ != __name__ for base in klass.__mro__)


class Capability(abc.ABC):  # noqa: B024 (an ABC for its subclass hook; its methods are declared by ``methods``)
    """One optional part of a plugin: the methods that make it (``methods``), declared here; a plugin
    that names the capability must implement them (checked when its class is made)."""

    methods: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __subclasshook__(cls, klass: type) -> bool:
        # A class that implements every method has the capability, named or not; otherwise the usual
        # rules decide (a class that names it is a subclass, and must then implement it).
        # Only a capability itself asks this: a plugin class that names capabilities inherits the hook,
        # and must not make every class with one of its methods a subclass of that plugin.
        if "methods" in vars(cls) and cls.methods and all(_defines(klass, m) for m in cls.methods):
            return True
        return NotImplemented


class TrainingData(Capability):
    """Has a training split (what ``spufix fit`` and ``discover`` read)."""

    methods: ClassVar[tuple[str, ...]] = ("training_split",)

    def training_split(self, classes: Sequence[int] | None, source: str | None = None, limit: int | None = None) -> Benchmark:
        """Training images of ``classes`` (None: all), e.g. to fit SpuFix on; ``source`` says where from."""
        raise NotImplementedError


class GroundTruthSource(Capability):
    """A generated benchmark that knows which features it seeded where (the SpuFix demo, discovery checks)."""

    methods: ClassVar[tuple[str, ...]] = ("ground_truth",)

    def ground_truth(self, options: BenchmarkOptions) -> GroundTruth | None:
        """The ground truth of the benchmark ``load(options)`` gives."""
        raise NotImplementedError


class MinesPools(Capability):
    """Generates an unlabelled pool to mine spurious images from (``spurbench mine`` without --pool)."""

    methods: ClassVar[tuple[str, ...]] = ("mining_pool",)

    def mining_pool(self, options: BenchmarkOptions) -> tuple[Benchmark, PoolTruth | None]:
        """The pool (every image ``role="negative"``, ``class_index=-1``) and what it holds where the
        generator knows (None: unknown)."""
        raise NotImplementedError


class GivesPositives(Capability):
    """Gives held-out class images to a benchmark whose spurious images were mined elsewhere."""

    methods: ClassVar[tuple[str, ...]] = ("positives",)
    positives_crop_pct: ClassVar[float | None] = None  # the class-image crop of what ``positives`` gives (stated: a check says so)

    def positives(self, class_indices: Sequence[int], options: BenchmarkOptions) -> tuple[list[BenchmarkImage], list[BenchmarkClass], str]:
        """Images of ``class_indices`` in this plugin's label space (``role="positive"``), those classes'
        records (name, group, feature) and where the images came from."""
        raise NotImplementedError


class WritesMined(Capability):
    """Writes a benchmark folder from verified mined images (``spurbench mine export``)."""

    methods: ClassVar[tuple[str, ...]] = ("write_mined",)

    def write_mined(self, out: Path, images: Sequence[MinedImage], facts: dict[str, Any]) -> str:
        """Write the folder ``out``; returns its content checksum."""
        raise NotImplementedError


class PublishesDataset(Capability):
    """Has a Hub dataset: ``spurbench dataset build | download`` (and ``--push``)."""

    methods: ClassVar[tuple[str, ...]] = ("build_dataset", "push_dataset", "download_dataset")
    # Its data folders name it (``spurbench.json`` ``"kind"``): the dataset commands choose it for such a
    # folder, and never as the default for any other.
    named_by_its_data: ClassVar[bool] = False

    def build_dataset(self, source: Path, out: Path) -> str:
        """Package the upstream data in ``source`` as a Hub dataset folder ``out``; a summary line."""
        raise NotImplementedError

    def push_dataset(self, folder: Path, repo_id: str) -> str:
        """Verify a built dataset folder and upload it to the Hub dataset repo ``repo_id``; the commit url."""
        raise NotImplementedError

    def download_dataset(self, repo_id: str | None, revision: str | None, out: Path | None) -> Path:
        """Fetch the Hub dataset (default repo if None), verify it, return its folder."""
        raise NotImplementedError


class ScoresViews(Capability):
    """A benchmark of the "views" task: every image seen in several views, scored by the plugin's metrics."""

    methods: ClassVar[tuple[str, ...]] = ("check_views", "view_metrics")
    # Its metrics (aggregate keys of ``view_metrics``) as boards and reports show them, and its headline
    # on the cross-benchmark table: key, and its CI's low and high keys where it has one.
    view_metric_specs: ClassVar[tuple[ViewMetric, ...]] = ()
    headline: ClassVar[tuple[str, str | None, str | None]]

    def check_views(self, reference: Reference, views: dict[str, tuple[str, ...]]) -> None:
        """``leaderboard verify``: a one-line SpurbenchError unless every image of a result has the views the
        benchmark gives it."""
        raise NotImplementedError

    def view_metrics(self, table: ViewTable) -> ViewScores:
        """The metrics from the rows (recomputed by ``leaderboard verify``)."""
        raise NotImplementedError

    def watched_classes(self, label_space: str) -> dict[str, int]:
        """Classes (name -> index in ``label_space``) whose probability every row records. Default: none."""
        return {}


@dataclass(frozen=True)
class ExampleImage:
    """One picture for the board: an image (already composed, e.g. a mask over the image) and its caption."""

    image: Image.Image = field(repr=False)
    caption: str
    attribution: str | None = None  # the licence or source line the data requires, shown under it


class ShowsExamples(Capability):
    """Offers pictures for the board."""

    methods: ClassVar[tuple[str, ...]] = ("example_images",)

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        """Pictures for a result of ``benchmark_name`` at ``revision`` (e.g. the worst classes' spurious
        images): only what is at hand offline and what the data's licence allows to show, with its attribution."""
        raise NotImplementedError


def group_mauc(classes: Sequence[BenchmarkClass], class_auc: Sequence[float]) -> dict[str, float]:
    """``mauc_<group>``: the mean ROC-AUC of the classes of each class group (none without groups)."""
    groups: dict[str, list[float]] = {}
    for cls, auc in zip(classes, class_auc):
        if cls.group is not None:
            groups.setdefault(cls.group, []).append(float(auc))
    return {f"mauc_{group}": float(np.mean(values)) for group, values in sorted(groups.items())}


class AddsMetrics(Capability):
    """A spurious-AUC benchmark with metrics beyond the standard ones (default: :func:`group_mauc`)."""

    methods: ClassVar[tuple[str, ...]] = ("extra_metrics",)

    def extra_metrics(self, classes: Sequence[BenchmarkClass], class_auc: Sequence[float]) -> dict[str, float]:
        """From the per-class ROC-AUCs (in ``classes`` order); recorded per head and recomputed by ``leaderboard verify``."""
        raise NotImplementedError


CAPABILITIES: tuple[type[Capability], ...] = (
    TrainingData,
    GroundTruthSource,
    MinesPools,
    GivesPositives,
    WritesMined,
    PublishesDataset,
    ScoresViews,
    ShowsExamples,
    AddsMetrics,
)
C = TypeVar("C", bound=Capability)


def require(plugin: Any, capability: type[C], method: str | None = None) -> C:
    """``plugin`` as a ``capability``, or the one-line refusal of ``method`` (default: the capability's first)."""
    if isinstance(plugin, capability):
        return plugin
    raise SpurbenchError(REFUSALS[method or capability.methods[0]].format(name=getattr(plugin, "name", plugin)))


def implements(plugin: Any, method: str) -> bool:
    """Whether a plugin (or plugin class) implements a capability's ``method`` itself, e.g. ``"build_dataset"``
    (a capability's own default, such as ``ScoresViews.watched_classes``, does not count)."""
    return _defines(plugin if isinstance(plugin, type) else type(plugin), method)


def stated(plugin: Any, capability: type[Capability], attribute: str) -> Any:
    """A capability's class attribute as ``plugin`` states it, else the capability's default (None where it
    has none): a plugin that has the capability without naming it inherits no default."""
    return getattr(plugin, attribute, getattr(capability, attribute, None))


def extra_metrics_of(plugin: Any) -> Callable[[Sequence[BenchmarkClass], Sequence[float]], dict[str, float]]:
    """What a spurious-AUC head records beyond the standard metrics: the plugin's ``extra_metrics``
    (``AddsMetrics``), else :func:`group_mauc` (also for no plugin, a benchmark built in code)."""
    return plugin.extra_metrics if isinstance(plugin, AddsMetrics) else group_mauc


def capabilities_of(plugin: Any) -> list[str]:
    """The names of the capabilities a plugin has, e.g. for ``spurbench ls``."""
    return [c.__name__ for c in CAPABILITIES if isinstance(plugin, c)]


def undeclared_methods(cls: type) -> list[str]:
    """Methods of a capability that ``cls`` names among its bases but does not implement (a plugin
    that names ``TrainingData`` must define ``training_split``)."""
    return [f"{c.__name__}.{m}" for c in CAPABILITIES if c in cls.__mro__ for m in c.methods if not _defines(cls, m)]


__all__ = [
    "CAPABILITIES",
    "REFUSALS",
    "AddsMetrics",
    "Capability",
    "ExampleImage",
    "GivesPositives",
    "GroundTruthSource",
    "MinesPools",
    "PublishesDataset",
    "ScoresViews",
    "ShowsExamples",
    "TrainingData",
    "WritesMined",
    "capabilities_of",
    "extra_metrics_of",
    "group_mauc",
    "implements",
    "require",
    "stated",
    "undeclared_methods",
]
