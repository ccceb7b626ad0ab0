"""A model on a benchmark's training split: what ``spufix fit`` and ``discover`` share."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from spurbench.benchmarks import BENCHMARKS, BenchmarkPlugin, TrainingData, benchmarks_with, get_benchmark
from spurbench.errors import SpurbenchError
from spurbench.settings.command import CommandSettings


class TrainingSettings(CommandSettings):
    """A model command that reads a benchmark's training split.

    ``train_data`` naming a registered benchmark means that benchmark's own split, from no other
    source: such settings are kept as ``benchmark=NAME, train_data=None``."""

    benchmark: str | None = None  # the registered benchmark whose training split is used; None: the one in the model's label space
    train_data: str | None = None  # where its training images come from (e.g. a local ILSVRC2012 train folder, or 'hub')
    limit: Annotated[int, Field(ge=2)] | None = None  # at most this many training images per class

    @model_validator(mode="before")
    @classmethod
    def _named_split(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("benchmark") is None and values.get("train_data") in BENCHMARKS.names():
            return {**values, "benchmark": values["train_data"], "train_data": None}
        return values

    @field_validator("benchmark")
    @classmethod
    def _registered(cls, name: str | None) -> str | None:
        if name is not None:
            get_benchmark(name)  # an unknown name: one line with suggestions
        return name

    def training_plugin(self, label_space: str) -> BenchmarkPlugin:
        """The benchmark whose training split is used: the one named, else the one registered benchmark
        with a training split in ``label_space`` (the loaded model's)."""
        if self.benchmark is not None:
            return get_benchmark(self.benchmark)
        candidates = [get_benchmark(name) for name in benchmarks_with(TrainingData)]
        matching = [plugin for plugin in candidates if plugin.label_space == label_space]
        if len(matching) == 1:
            return matching[0]
        raise SpurbenchError(f"name the benchmark whose training split to use: --benchmark ({', '.join(p.name for p in candidates)})")
