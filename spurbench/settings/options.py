"""What ``spurbench run`` and ``spurbench sweep`` share: ``RunOptions``, one ``RunSettings`` per model
(``RunEntry``) and benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from spurbench.benchmarks import get_benchmark
from spurbench.benchmarks.option_values import shared_option_values
from spurbench.schemas import Strict
from spurbench.settings.features import FeatureSettings
from spurbench.settings.run import RunSettings, check_bootstrap, check_temperature


@dataclass(frozen=True)
class RunEntry:
    """One model of a run or sweep: named on the command line, or an entry of a model list (which
    carries its own checkpoint and temperatures)."""

    model: str
    checkpoint: str | None = None
    temperature: float = 1.0
    spufix_temperature: float | None = None


class RunOptions(Strict):
    """What ``spurbench run`` and ``spurbench sweep`` share: every setting of a run but its models and
    benchmarks, one ``RunSettings`` per (model, benchmark) from :meth:`settings`. ``-O`` values stay
    text here: how a text reads depends on the benchmarks it is for (:meth:`option_values`)."""

    model_config = ConfigDict(frozen=True)

    named_options: dict[str, Any] = Field(default_factory=dict)  # benchmark options with flags of their own (--data-dir, --limit, ...)
    text_options: dict[str, str] = Field(default_factory=dict)  # -O KEY=VALUE
    features: FeatureSettings = FeatureSettings()
    bootstrap: int = 1000
    temperature: float = 1.0  # of the models named on the command line (a model list's entries carry their own)
    spufix_temperature: float | None = None
    spufix: str | None = None
    output: Path | None = None
    force: bool = False

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, draws: int) -> int:
        return check_bootstrap(draws)

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, value: float) -> float:
        return check_temperature(value)

    @field_validator("spufix_temperature")
    @classmethod
    def _spufix_temperature(cls, value: float | None) -> float | None:
        return None if value is None else check_temperature(value, "--spufix-temperature")

    def option_values(self, benchmarks: Sequence[str]) -> dict[str, Any]:
        """The benchmark option values for ``benchmarks``: the named ones, then every ``-O KEY=VALUE``
        read as its option's type (``benchmarks.option_values``; one value for all of them)."""
        if not self.text_options:
            return dict(self.named_options)
        return {**self.named_options, **shared_option_values([get_benchmark(name) for name in benchmarks], self.text_options)}

    def entry(self, model: str, checkpoint: str | None = None) -> RunEntry:
        """A model named on the command line: it takes the run's temperatures."""
        return RunEntry(model, checkpoint, self.temperature, self.spufix_temperature)

    def settings(self, entry: RunEntry, benchmark: str, option_values: dict[str, Any]) -> RunSettings:
        return RunSettings(
            model=entry.model,
            checkpoint=entry.checkpoint,
            benchmark=benchmark,
            options=option_values,
            features=self.features,
            bootstrap=self.bootstrap,
            temperature=entry.temperature,
            spufix_temperature=entry.spufix_temperature,
            spufix=self.spufix,
            output=self.output,
            force=self.force,
        )
