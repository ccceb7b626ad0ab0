"""The benchmark contract: what a benchmark *is* (data records) and what a benchmark *plugin* provides.

A benchmark is a list of classes and a flat list of images. For each class k:
  * positives: images showing class k (e.g. its ImageNet validation images);
  * negatives: images showing only a spurious feature of class k, never the object,
    each tagged with its spurious-component id.
Images are opened lazily; a file that cannot be decoded raises ``DataError`` naming it.

A plugin (a :class:`BenchmarkPlugin` subclass, registered under the entry-point group
``spurbench.benchmarks`` or with :func:`spurbench.benchmarks.register_benchmark`) owns everything
specific to one benchmark: its options, loading, the reference data ``leaderboard verify`` checks
results against, its training split, its ground truth where it has one, its default models and
any extra metrics. Nothing outside the plugin knows which benchmarks exist.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Sequence

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from spurbench.benchmarks.checks import check_plugin_class, check_protocols, where_it_runs
from spurbench.errors import DataError, LabelSpaceError, SpurbenchError
from spurbench.imagenet import maps_to
from spurbench.protocols import EvalProtocol
from spurbench.registry import suggest
from spurbench.benchmarks.records import GroundTruth, MinedImage, PoolTruth, Reference
from spurbench.benchmarks.views import ExampleImage, ViewMetric, ViewScores, ViewTable
from spurbench.results import VIEW_SEPARATOR

if TYPE_CHECKING:
    import torch

Role = Literal["positive", "negative"]
ROLES: tuple[Role, Role] = ("positive", "negative")
Task = Literal["spurious-auc", "views"]


@dataclass(frozen=True)
class BenchmarkClass:
    index: int  # class index in the benchmark's label space (e.g. the ImageNet-1k index)
    name: str
    components: tuple[int, ...] = ()  # spurious-component ids of this class's negatives
    group: str | None = None  # a class group the reports compare (e.g. classes with a seeded feature vs control classes)
    feature: str | None = None  # short description of the spurious feature, when known


@dataclass(frozen=True)
class BenchmarkImage:
    image_id: str  # unique and stable across runs; keys per-image results and the feature cache
    class_index: int
    role: Role
    component: int | None  # spurious component (negatives), None for positives
    origin: str  # file path / parquet row / generator seed: named in errors
    loader: Callable[[], Image.Image] = field(repr=False, compare=False)
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
    facts: dict[str, Any] = field(default_factory=dict)  # provenance copied into results; never read back
    # The registry name of the plugin that loaded it, where ``name`` is not that name (a plugin whose
    # benchmarks are named by their data, so that two of them keep apart in results and boards).
    plugin: str | None = None
    # A views benchmark: the image's views from its preprocessed, un-normalised input tensor [3, H, W]
    # in [0, 1] under the run's protocol, one per name of ``image.views``, in that order. It runs in the
    # data-loader workers.
    render_views: "Callable[[BenchmarkImage, torch.Tensor, EvalProtocol], list[torch.Tensor]] | None" = field(default=None, repr=False)
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
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"]) or "<options>"
            known = [k for k in self.options_model.model_fields if k != "token"]
            if first["type"] == "extra_forbidden":
                raise SpurbenchError(f"benchmark {self.name!r} has no option {key!r}.{suggest(key, known)} Its options: {', '.join(known)}") from None
            raise SpurbenchError(f"benchmark {self.name!r}, option {key!r}: {' '.join(str(first['msg']).split())}") from None

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
            raise LabelSpaceError(f"model {getattr(model, 'name', model)} predicts label space {space!r}, and benchmark {self.name!r} scores {self.label_space!r} classes; {where_it_runs(space)}")

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

    def example_images(self, benchmark_name: str, revision: str | None, worst_classes: Sequence[int]) -> list["ExampleImage"]:
        """Pictures for the board of a result of ``benchmark_name`` at ``revision`` (e.g. the worst classes'
        spurious images): only what is at hand offline and what the data's licence allows to show, with
        its attribution. Default: none."""
        return []

    def extra_metrics(self, classes: Sequence[BenchmarkClass], class_auc: Sequence[float]) -> dict[str, float]:
        """Metrics beyond the standard ones, from the per-class ROC-AUCs (in ``classes`` order); recorded per
        head and recomputed by ``leaderboard verify``. Default: :func:`group_mauc`."""
        return group_mauc(classes, class_auc)


def group_mauc(classes: Sequence[BenchmarkClass], class_auc: Sequence[float]) -> dict[str, float]:
    """``mauc_<group>``: the mean ROC-AUC of the classes of each class group (none without groups)."""
    groups: dict[str, list[float]] = {}
    for cls, auc in zip(classes, class_auc):
        if cls.group is not None:
            groups.setdefault(cls.group, []).append(float(auc))
    return {f"mauc_{group}": float(np.mean(values)) for group, values in sorted(groups.items())}


__all__ = [
    "ROLES",
    "group_mauc",
    "Benchmark",
    "BenchmarkClass",
    "BenchmarkImage",
    "BenchmarkOptions",
    "BenchmarkPlugin",
    "GroundTruth",
    "MinedImage",
    "PoolTruth",
    "Reference",
    "Role",
    "Task",
    "ExampleImage",
    "VIEW_SEPARATOR",
    "ViewMetric",
    "ViewScores",
    "ViewTable",
    "images_by_class",
]
