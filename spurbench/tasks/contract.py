"""The task contract. A task ("spurious-auc", "views", or a plugin's own) is what a benchmark plugin
names in ``BenchmarkPlugin.task``, and it owns, for its benchmarks: scoring features into a result
(``evaluate_features``), that result's model (``result_model``, the file's ``kind``), ``leaderboard
verify``'s recomputation (``verify``), its part of the board (``board``), its headline, and the tables
``spurbench run`` prints. ``evaluate``, ``leaderboard verify``/``build`` and ``report`` only ask.

A task is registered like adapters and benchmarks: built-ins in ``spurbench.results.TASKS``, others
through the entry-point group ``spurbench.tasks`` (``name = module:TaskClass``) or
:func:`spurbench.tasks.register_task`. Constructors take no arguments and do nothing.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from rich.table import Table
from torch import nn

from spurbench.benchmarks.base import Benchmark, BenchmarkPlugin, Reference
from spurbench.benchmarks.capabilities import Capability
from spurbench.errors import DataError
from spurbench.features import FeatureSet
from spurbench.heads import PLAIN
from spurbench.protocols import EvalProtocol
from spurbench.results import ModelInfo, Precision, Provenance, SpuFixInfo, TaskResult
from spurbench.tasks.board import TaskBoard


@dataclass(frozen=True)
class EvaluationContext:
    """Everything ``evaluate`` has once the features are computed: what a task scores a result from."""

    benchmark: Benchmark
    plugin: BenchmarkPlugin | None  # None: a benchmark built in code, of no registered plugin
    features: FeatureSet  # one row per image (a views benchmark: per image and view), in ``benchmark.images`` order
    columns: dict[int, int]  # class index -> the model's output column
    heads: dict[str, nn.Module]  # head name ("plain", "spufix") -> the head on the features
    temperatures: dict[str, float]  # head name -> its softmax temperature
    bootstrap: int  # draws for bootstrap confidence intervals
    config_hash: str
    model: ModelInfo  # the result's record of the model (its data config as plain JSON)
    data_config: dict[str, Any]  # the adapter's data config: the geometry each image was fed at
    protocol: EvalProtocol  # the benchmark's protocol the run scored under (``protocol.name``: "paper", "model")
    precision: Precision  # the backbone's autocast dtype
    provenance: Provenance
    spufix: SpuFixInfo | None  # the artifact of the ``spufix`` head, if ``heads`` has one


@dataclass(frozen=True)
class Headline:
    """A result's one number: for sweep tables, the board's cross-benchmark table and reports."""

    name: str  # short, e.g. "mAUC"
    header: str  # its column header across benchmarks, e.g. "mAUC [95% CI]"
    value: float | None  # of the plain head; None: undefined
    low: float | None = None  # its confidence interval, where it has one
    high: float | None = None
    signed: bool = False  # shown with its sign (a difference)


class Task(abc.ABC):
    """One task. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]  # the registry name, the result file's ``kind``, what plugins name in ``task``
    description: ClassVar[str]
    result_model: ClassVar[type[TaskResult]]  # its result file's model (``kind`` narrowed to ``name``)
    capability: ClassVar[type[Capability] | None] = None  # what its benchmark plugins must have (e.g. ``ScoresViews``)
    legend: ClassVar[str | None] = None  # Markdown opening the board: what its columns mean, in words
    board_files: ClassVar[tuple[str, ...]] = ()  # glob patterns of the files its board writes (stale ones go)

    def check_run(self, benchmark: Benchmark, plugin: BenchmarkPlugin | None, model: ModelInfo) -> None:
        """Before any feature is computed: a one-line error for a benchmark (or model) this task cannot
        score. Default: the plugin must have ``capability``."""
        if self.capability is not None and not isinstance(plugin, self.capability):
            raise DataError(
                f"benchmark {benchmark.name}: task {self.name!r} scores plugins with {self.capability.__name__}, and its plugin has none"
            )

    @abc.abstractmethod
    def evaluate_features(self, context: EvaluationContext) -> TaskResult:
        """Score every head on the features: the result (``evaluate`` writes it)."""

    @abc.abstractmethod
    def verify(self, result: Any, reference: Reference, plugin: BenchmarkPlugin) -> None:
        """``leaderboard verify`` after the checks every result gets (schema, benchmark, checksum, heads):
        recompute every metric from what the file stores; a one-line ``VerificationError`` naming the
        field at the first mismatch."""

    @abc.abstractmethod
    def headline_of(self, result: Any) -> Headline:
        """The result's headline (plain head)."""

    def headline(self, result: Any) -> tuple[str, float | None]:
        """(name, value) of the result's headline."""
        headline = self.headline_of(result)
        return headline.name, headline.value

    def like_with_like(self, result: Any) -> tuple[str, ...]:
        """What besides revision and protocol must agree between the results of one board section (e.g.
        the views scored). Default: nothing."""
        return ()

    def worst_classes(self, result: Any) -> list[int]:
        """Class indices, worst first (the board shows the plugin's pictures of the first). Default: none."""
        return []

    @abc.abstractmethod
    def board(self, results: list[Any], info: dict[str, dict]) -> TaskBoard:
        """Its part of the board from its verified results (one per benchmark and model; may be none).
        ``info``: model name -> model-list facts (``display_name``, ``data``, ``paper``)."""

    @abc.abstractmethod
    def summary_table(self, result: Any) -> Table:
        """What ``spurbench run`` prints first: one column per head, one row per metric."""

    @abc.abstractmethod
    def classes_table(self, result: Any, n: int = 10, head: str = PLAIN) -> Table:
        """What ``spurbench run`` prints next: the ``n`` worst classes of ``head``."""


__all__ = ["EvaluationContext", "Headline", "Task"]
