"""The benchmark contract: what a benchmark *plugin* provides, and the table of registered plugins.
What a benchmark *is* (its classes and images) is in ``data.py``, below this contract; its names are
handed on from here too.

A plugin (a :class:`BenchmarkPlugin` subclass, registered under the entry-point group
``spurbench.benchmarks`` or with :func:`spurbench.benchmarks.register_benchmark`) owns everything
specific to one benchmark: its options, loading, the reference data ``leaderboard verify`` checks
results against, its training split, its ground truth where it has one, its default models and
any extra metrics. Nothing outside the plugin knows which benchmarks exist.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from spurbench.benchmarks.checks import check_plugin_class, where_it_runs
from spurbench.benchmarks.data import ROLES, Benchmark, BenchmarkClass, BenchmarkImage, Role, images_by_class
from spurbench.benchmarks.records import GroundTruth, MinedImage, PoolTruth, Reference
from spurbench.benchmarks.views import ExampleImage, ViewMetric, ViewScores, ViewTable
from spurbench.errors import LabelSpaceError, SpurbenchError
from spurbench.imagenet import maps_to
from spurbench.protocols import EvalProtocol
from spurbench.registry import Registry, suggest
from spurbench.results import VIEW_SEPARATOR
from spurbench.schemas import first_error

Task = Literal["spurious-auc", "views"]


class BenchmarkOptions(BaseModel):
    """Options every benchmark takes; a plugin subclasses this with its own fields. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    limit: PositiveInt | None = None  # at most this many images per (class, role); for smoke runs
    token: str | bool | None = Field(default=None, exclude=True)  # Hub token for gated data; never recorded


class BenchmarkPlugin(abc.ABC):
    """One benchmark. Subclasses set the class attributes and implement ``load`` and ``reference``.

    Constructors take no arguments and do nothing: every method is an explicit step.
    """

    name: ClassVar[str]  # the registry name, e.g. ``spurbench run --benchmark NAME``
    description: ClassVar[str]  # one line for ``--help`` and ``spurbench ls``
    options_model: ClassVar[type[BenchmarkOptions]] = BenchmarkOptions
    default_models: ClassVar[tuple[str, ...]] = ()  # what ``spurbench run`` evaluates when no model is named
    default: ClassVar[bool] = False  # the benchmark ``spurbench run`` uses without ``--benchmark`` (exactly one)
    label_space: ClassVar[str | None] = None  # the label space of its classes (and of its training split)
    positives_crop_pct: ClassVar[float | None] = None  # the class-image crop of what ``positives`` gives (stated where implemented)
    # Its data folders name it (``spurbench.json`` ``"kind"``): the dataset commands choose it for such a
    # folder, and never as the default for any other.
    named_by_its_data: ClassVar[bool] = False
    # "spurious-auc": class images against spurious-only images (the standard metrics and result file);
    # "views": every image seen in several views (clean, noised, watermarked, ...) and scored by the
    # plugin's ``view_metrics`` (a views result file).
    task: ClassVar[Task] = "spurious-auc"
    # A views plugin's metrics: the aggregate ones (``view_metrics``), those on the board, and its
    # headline on the cross-benchmark table (key, and its CI's low and high keys where it has one).
    view_metric_specs: ClassVar[tuple[ViewMetric, ...]] = ()
    headline: ClassVar[tuple[str, str | None, str | None]] = ("mauc", "mauc_ci_low", "mauc_ci_high")
    # Its protocols, {name: EvalProtocol}: "paper" its authors' evaluation, "model" each model's own
    # transform (spurbench.protocols); ``protocols_for`` gives them per options where they differ.
    protocols: ClassVar[dict[str, EvalProtocol]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_plugin_class(cls, gives_positives=cls.positives is not BenchmarkPlugin.positives)

    def protocols_for(self, options: BenchmarkOptions) -> dict[str, EvalProtocol]:
        """The protocols of the benchmark ``load(options)`` gives, known without loading. Default: ``protocols``."""
        return self.protocols

    def implements(self, method: str) -> bool:
        """Whether this plugin provides an optional method (``training_split``, ``ground_truth``, ...)."""
        return getattr(type(self), method) is not getattr(BenchmarkPlugin, method)

    def parse_options(self, values: dict[str, Any] | BenchmarkOptions | None = None) -> BenchmarkOptions:
        """This benchmark's options from ``key: value`` pairs; a one-line error names an unknown or bad key."""
        if isinstance(values, self.options_model):
            return values
        if isinstance(values, BenchmarkOptions):
            raise SpurbenchError(f"benchmark {self.name!r} takes {self.options_model.__name__}, not {type(values).__name__}")
        try:
            return self.options_model.model_validate(dict(values or {}))
        except ValidationError as exc:
            first = first_error(exc, root="<options>")
            key = first.where
            known = [k for k in self.options_model.model_fields if k != "token"]
            if first.kind == "extra_forbidden":
                raise SpurbenchError(
                    f"benchmark {self.name!r} has no option {key!r}.{suggest(key, known)} Its options: {', '.join(known)}"
                ) from None
            raise SpurbenchError(f"benchmark {self.name!r}, option {key!r}: {first.message}") from None

    @abc.abstractmethod
    def load(self, options: BenchmarkOptions) -> Benchmark:
        """The benchmark's classes and images (opened lazily), content checksum verified."""

    @abc.abstractmethod
    def reference(self, revision: str) -> Reference | None:
        """What ``leaderboard verify`` checks a result of ``revision`` against; None: an unknown revision."""

    def benchmark_name(self, options: BenchmarkOptions) -> str:
        """The ``Benchmark.name`` that ``load(options)`` gives, known without loading (result files are named
        by it before anything is loaded). Default: the plugin's name."""
        return self.name

    def training_split(self, classes: Sequence[int] | None, source: str | None = None, limit: int | None = None) -> Benchmark:
        """Training images of ``classes`` (None: all), e.g. to fit SpuFix on; ``source`` says where from."""
        raise SpurbenchError(f"benchmark {self.name!r} has no training split")

    def ground_truth(self, options: BenchmarkOptions) -> GroundTruth | None:
        """The ground truth of a generated benchmark (which features it seeded where); None for real data."""
        return None

    def build_dataset(self, source: Path, out: Path) -> str:
        """Package the benchmark's upstream data in ``source`` as a Hub dataset folder ``out``; a summary line."""
        raise SpurbenchError(f"benchmark {self.name!r} has no dataset to build")

    def push_dataset(self, folder: Path, repo_id: str) -> str:
        """Verify a built dataset folder and upload it to the Hub dataset repo ``repo_id``; the commit url."""
        raise SpurbenchError(f"benchmark {self.name!r} has no dataset to publish")

    def download_dataset(self, repo_id: str | None, revision: str | None, out: Path | None) -> Path:
        """Fetch the benchmark's Hub dataset (default repo if None), verify it, return its folder."""
        raise SpurbenchError(f"benchmark {self.name!r} has no dataset to download")

    def mining_pool(self, options: BenchmarkOptions) -> tuple[Benchmark, PoolTruth | None]:
        """A generated unlabelled pool to mine spurious images from (every image ``role="negative"``,
        ``class_index=-1``), and what it holds where the generator knows (None: unknown)."""
        raise SpurbenchError(f"benchmark {self.name!r} generates no mining pool; pass --pool DIR")

    def positives(self, class_indices: Sequence[int], options: BenchmarkOptions) -> tuple[list[BenchmarkImage], list[BenchmarkClass], str]:
        """Held-out images of ``class_indices`` in this plugin's label space (``role="positive"``), those
        classes' records (name, group, feature) and where the images came from: the positives of a
        benchmark whose negatives were mined elsewhere."""
        raise SpurbenchError(f"benchmark {self.name!r} provides no positives for other benchmarks")

    def write_mined(self, out: Path, images: Sequence[MinedImage], facts: dict[str, Any]) -> str:
        """Write a benchmark folder ``out`` from verified mined images; returns its content checksum."""
        raise SpurbenchError(f"benchmark {self.name!r} does not write mined benchmarks")

    def check_model(self, model: Any) -> None:
        """Refuse, in one line, a model this benchmark cannot score (e.g. not an ImageNet-1k classifier);
        called by ``evaluate`` before any image is read. Default: any model whose label space maps; the
        refusal names the benchmarks it can run on."""
        space = getattr(model, "label_space", None)
        if self.label_space is not None and space is not None and not maps_to(self.label_space, space):
            raise LabelSpaceError(
                f"model {getattr(model, 'name', model)} predicts label space {space!r}, and benchmark {self.name!r} scores {self.label_space!r} classes; {where_it_runs(space, BENCHMARKS)}"
            )

    def check_views(self, reference: Reference, views: dict[str, tuple[str, ...]]) -> None:
        """``leaderboard verify``: raise a one-line SpurbenchError unless every image of a views result has
        the views the benchmark gives it. A views plugin must say; the default refuses."""
        raise SpurbenchError(f"benchmark {self.name!r} does not check views")

    def watched_classes(self, label_space: str) -> dict[str, int]:
        """A views benchmark: classes (name -> index in ``label_space``) whose probability every row records."""
        return {}

    def view_metrics(self, table: ViewTable) -> ViewScores:
        """A views benchmark's metrics from its rows (recomputed by ``leaderboard verify``)."""
        raise SpurbenchError(f"benchmark {self.name!r} is not a views benchmark")

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list[ExampleImage]:
        """Pictures for the board of a result of ``benchmark_name`` at ``revision`` (e.g. the worst classes'
        spurious images): only what is at hand offline and what the data's licence allows to show, with
        its attribution. Default: none."""
        return []

    def extra_metrics(self, classes: Sequence[BenchmarkClass], class_auc: Sequence[float]) -> dict[str, float]:
        """Metrics beyond the standard ones, from the per-class ROC-AUCs (in ``classes`` order); recorded per
        head and recomputed by ``leaderboard verify``. Default: :func:`group_mauc`."""
        return group_mauc(classes, class_auc)


# Here, beside the contract, so that a plugin's refusal can name the benchmarks a model runs on
# (``check_model``) without importing the package that hands these names on: no import circle.
BENCHMARKS: Registry[type[BenchmarkPlugin]] = Registry("benchmark", base=BenchmarkPlugin, entry_point_group="spurbench.benchmarks")


def group_mauc(classes: Sequence[BenchmarkClass], class_auc: Sequence[float]) -> dict[str, float]:
    """``mauc_<group>``: the mean ROC-AUC of the classes of each class group (none without groups)."""
    groups: dict[str, list[float]] = {}
    for cls, auc in zip(classes, class_auc):
        if cls.group is not None:
            groups.setdefault(cls.group, []).append(float(auc))
    return {f"mauc_{group}": float(np.mean(values)) for group, values in sorted(groups.items())}


__all__ = [
    "BENCHMARKS",
    "ROLES",
    "VIEW_SEPARATOR",
    "Benchmark",
    "BenchmarkClass",
    "BenchmarkImage",
    "BenchmarkOptions",
    "BenchmarkPlugin",
    "ExampleImage",
    "GroundTruth",
    "MinedImage",
    "PoolTruth",
    "Reference",
    "Role",
    "Task",
    "ViewMetric",
    "ViewScores",
    "ViewTable",
    "group_mauc",
    "images_by_class",
]
