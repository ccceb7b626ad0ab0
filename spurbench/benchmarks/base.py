"""The benchmark contract: what every benchmark *plugin* provides, and the table of registered plugins.
What a plugin may provide beyond it is split into small capabilities (``capabilities.py``: training
data, ground truth, mining pools, positives, mined folders, a Hub dataset, views, pictures, metrics).
What a benchmark *is* (its classes and images) is in ``data.py``, below this contract; its names are
handed on from here too.

A plugin (a :class:`BenchmarkPlugin` subclass, registered under the entry-point group
``spurbench.benchmarks`` or with :func:`spurbench.benchmarks.register_benchmark`) owns everything
specific to one benchmark: its options, loading, the reference data ``leaderboard verify`` checks
results against, the task that scores it, and its capabilities. Nothing outside the plugin knows
which benchmarks exist.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from pydantic import ValidationError

from spurbench.benchmarks.capabilities import CAPABILITIES, ExampleImage, GivesPositives, group_mauc, undeclared_methods
from spurbench.benchmarks.checks import check_plugin_class, where_it_runs
from spurbench.benchmarks.data import ROLES, Benchmark, BenchmarkClass, BenchmarkImage, BenchmarkOptions, Role, images_by_class
from spurbench.benchmarks.records import GroundTruth, MinedImage, PoolTruth, Reference
from spurbench.benchmarks.view_scoring import ViewMetric, ViewScores, ViewTable
from spurbench.errors import LabelSpaceError, SpurbenchError
from spurbench.label_spaces import maps_to
from spurbench.protocols import EvalProtocol
from spurbench.registry import Registry, suggest
from spurbench.results import VIEW_SEPARATOR
from spurbench.schemas import first_error


class BenchmarkPlugin(abc.ABC):
    """One benchmark. Subclasses set the class attributes and implement ``load`` and ``reference``, and
    name the capabilities they have before this class (see ``capabilities.py``).

    Constructors take no arguments and do nothing: every method is an explicit step.
    """

    name: ClassVar[str]  # the registry name, e.g. ``spurbench run --benchmark NAME``
    description: ClassVar[str]  # one line for ``--help`` and ``spurbench ls``
    options_model: ClassVar[type[BenchmarkOptions]] = BenchmarkOptions
    default_models: ClassVar[tuple[str, ...]] = ()  # what ``spurbench run`` evaluates when no model is named
    default: ClassVar[bool] = False  # the benchmark ``spurbench run`` uses without ``--benchmark`` (exactly one)
    label_space: ClassVar[str | None] = None  # the label space of its classes (and of its training split)
    # The registered task (``spurbench.tasks``) that scores it and owns its result file: "spurious-auc"
    # (class images against spurious-only images), "views" (a ``ScoresViews`` plugin), or a plugin's own.
    task: ClassVar[str] = "spurious-auc"
    # Its protocols, {name: EvalProtocol}: "paper" its authors' evaluation, "model" each model's own
    # transform (spurbench.protocols); ``protocols_for`` gives them per options where they differ.
    protocols: ClassVar[dict[str, EvalProtocol]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_plugin_class(cls, gives_positives=issubclass(cls, GivesPositives), missing=undeclared_methods(cls))

    def protocols_for(self, options: BenchmarkOptions) -> dict[str, EvalProtocol]:
        """The protocols of the benchmark ``load(options)`` gives, known without loading. Default: ``protocols``."""
        return self.protocols

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

    def check_model(self, model: Any) -> None:
        """Refuse, in one line, a model this benchmark cannot score (e.g. not an ImageNet-1k classifier);
        called by ``evaluate`` before any image is read. Default: any model whose label space maps; the
        refusal names the benchmarks it can run on."""
        space = getattr(model, "label_space", None)
        if self.label_space is not None and space is not None and not maps_to(self.label_space, space):
            raise LabelSpaceError(
                f"model {getattr(model, 'name', model)} predicts label space {space!r}, and benchmark {self.name!r} scores {self.label_space!r} classes; {where_it_runs(space, BENCHMARKS)}"
            )


# Here, beside the contract, so that a plugin's refusal can name the benchmarks a model runs on
# (``check_model``) without importing the package that hands these names on: no import circle.
BENCHMARKS: Registry[type[BenchmarkPlugin]] = Registry("benchmark", base=BenchmarkPlugin, entry_point_group="spurbench.benchmarks")


__all__ = [
    "BENCHMARKS",
    "CAPABILITIES",
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
    "ViewMetric",
    "ViewScores",
    "ViewTable",
    "group_mauc",
    "images_by_class",
]
