"""One model on one benchmark: ``RunSettings``, checked on construction, and the checks it shares with
``RunOptions`` (bootstrap draws, temperatures, checkpoint files)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from spurbench._version import __version__
from spurbench.adapters import check_model_name, declared_model
from spurbench.benchmarks import BenchmarkOptions, BenchmarkPlugin, get_benchmark
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError
from spurbench.files import stable_hash
from spurbench.heads import PLAIN, SPUFIX
from spurbench.metrics import MAX_BOOTSTRAP_DRAWS
from spurbench.preprocessing import check_protocol
from spurbench.protocols import EvalProtocol, scored_protocol
from spurbench.results import result_filename
from spurbench.schemas import Strict
from spurbench.settings.features import FeatureSettings


def check_bootstrap(draws: int) -> int:
    """Bootstrap draws in 0..MAX_BOOTSTRAP_DRAWS, the bound ``leaderboard verify`` recomputes."""
    if not 0 <= draws <= MAX_BOOTSTRAP_DRAWS:
        raise SpurbenchError(f"--bootstrap {draws}: use 0 to {MAX_BOOTSTRAP_DRAWS} draws")
    return draws


def check_temperature(value: float, what: str = "temperature") -> float:
    """Softmax temperatures must be positive and finite (a one-line error otherwise)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise SpurbenchError(f"{what} must be a positive number, not {value!r}")
    return float(value)


def checkpoint_identity(checkpoint: str | Path | None) -> str | None:
    """A local checkpoint's content digest (memoised; see ``cache.content_digest``): what identifies it,
    not its path, so replacing the weights at the same path is a new configuration."""
    if checkpoint is None:
        return None
    check_checkpoint(checkpoint)
    return content_digest(checkpoint)


def check_checkpoint(checkpoint: str | Path) -> None:
    if not Path(checkpoint).is_file():
        raise SpurbenchError(f"checkpoint {str(checkpoint)!r} does not exist")


class RunSettings(Strict):
    """One model on one benchmark: what ``spurbench run`` and a sweep job decide, and ``evaluate`` takes.

    ``benchmark`` names a registered plugin (``spurbench.testing`` registers a tiny one for tests);
    ``options`` are its option values as the plugin parsed them (``model_dump``), so the settings
    serialise to JSON and parse back to the same options. ``spufix`` names a SpuFix artifact (a folder,
    ``hf://ORG/NAME[@REV]`` or ``auto``); the artifact itself is loaded by whoever runs.
    """

    model_config = ConfigDict(frozen=True)

    model: str  # FAMILY:SPEC, as given (the result file is named by the loaded model's name)
    checkpoint: str | None = None  # local .safetensors weights for the named architecture
    benchmark: str  # the benchmark plugin's registered name
    options: dict[str, Any] = Field(default_factory=dict)
    features: FeatureSettings = FeatureSettings()  # frozen, so one shared default is safe
    bootstrap: int = 1000
    temperature: float = 1.0
    spufix: str | None = None
    spufix_temperature: float | None = None  # None: the plain head's temperature
    output: Path | None = None  # where the result file is written; None: not written
    force: bool = False  # evaluate (and overwrite) even where a result of another configuration exists

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
        return None if value is None else check_temperature(value, "spufix temperature")

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, values: Any) -> Any:
        """The benchmark's plugin parses its options (one line for an unknown benchmark, option or value)
        and its protocol table must have the protocol asked for; the model's name must be loadable,
        a label space it declares must be one the benchmark scores, and a checkpoint must exist. The
        parsed options are what is kept."""
        if not isinstance(values, dict) or not isinstance(values.get("benchmark"), str):
            return values
        plugin = get_benchmark(values["benchmark"])
        options = plugin.parse_options(values.get("options") or {})
        features = values.get("features")
        protocol = features.protocol if isinstance(features, FeatureSettings) else (features or {}).get("protocol", "paper")
        check_protocol(protocol)
        scored_protocol(plugin.protocols_for(options), protocol, plugin.benchmark_name(options))
        if isinstance(values.get("model"), str):
            check_model_name(values["model"])
            declared = declared_model(values["model"])
            if declared is not None:  # a model the benchmark cannot score is refused before it downloads or trains
                plugin.check_model(declared)
        if values.get("checkpoint") is not None:
            check_checkpoint(values["checkpoint"])
        return {**values, "options": options.model_dump(mode="json")}

    # ---- derived (cheap, no I/O besides the memoised checkpoint digest) ------------------------------

    def plugin(self) -> BenchmarkPlugin:
        return get_benchmark(self.benchmark)

    def parsed_options(self) -> BenchmarkOptions:
        return self.plugin().parse_options(self.options)

    def benchmark_name(self) -> str:
        """What results are named by (a plugin's benchmarks may be named by their data)."""
        return self.plugin().benchmark_name(self.parsed_options())

    def protocol(self) -> EvalProtocol:
        """The protocol the plugin declares under ``features.protocol``, in full."""
        return scored_protocol(self.plugin().protocols_for(self.parsed_options()), self.features.protocol, self.benchmark_name())

    def effective_spufix_temperature(self) -> float:
        return self.temperature if self.spufix_temperature is None else self.spufix_temperature

    def result_file(self, model_name: str | None = None, benchmark_name: str | None = None) -> Path | None:
        """Where the result is written (None: nowhere): named by the model and benchmark as the settings
        give them, or by the loaded ones' names."""
        if self.output is None:
            return None
        return self.output / result_filename(model_name or self.model, benchmark_name or self.benchmark_name())

    def config_hash(self, spufix_reference: str | None) -> str:
        """Hash of the inputs that determine a result, known before the model is loaded (sweeps skip on it).

        ``spufix_reference``: the loaded artifact's content fingerprint (``artifact-sha256:...``), so a
        refitted artifact at the same location is a new configuration. ``precision`` changes the
        features, so it is hashed, but only when it is not fp32: every fp32 result written before the
        option existed keeps its hash. Not hashed, like the device: workers, the pixel cache (the same
        pixels either way) and channels-last (a memory layout; the same arithmetic up to rounding)."""
        precision = self.features.precision
        return stable_hash(
            {
                "model": self.model,
                "checkpoint": checkpoint_identity(self.checkpoint),
                "benchmark": self.benchmark_name(),
                "options": self.parsed_options().model_dump(),  # the token is excluded
                "protocol": self.protocol().model_dump(mode="json"),  # all of it: what the name means is the plugin's to change
                "bootstrap": self.bootstrap,
                "spufix": spufix_reference,
                "temperature": self.temperature,
                "spufix_temperature": self.effective_spufix_temperature(),
                "spurbench": __version__,
                **({"precision": precision} if precision != "fp32" else {}),
            }
        )

    def planned_facts(self, with_spufix: bool) -> dict[str, Any]:
        """What the result file will record of this configuration (``result_conflicts`` names what an
        existing file records differently); a checkpoint's weights are recorded by their digest."""
        return {
            "weights": checkpoint_identity(self.checkpoint),
            "heads": f"{PLAIN}+{SPUFIX}" if with_spufix else PLAIN,
            "protocol": self.features.protocol,
            "precision": self.features.precision,
            "bootstrap": self.bootstrap,
            "temperature": self.temperature,
            "spufix_temperature": self.effective_spufix_temperature() if with_spufix else None,
            "spurbench": __version__,
        }
