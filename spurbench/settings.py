"""What a run decides, typed, built once and passed down: ``FeatureSettings`` (how features are computed,
the part the feature stream reads) and ``RunSettings`` (one model on one benchmark: everything
``evaluate`` needs besides the loaded objects).

Both are frozen pydantic models that refuse unknown keys, so a sweep job carries its run as JSON and a
misspelt key fails where the job is planned, not inside a running SLURM job. Building a ``RunSettings``
checks every value ``evaluate`` would check without loading anything (benchmark and its options,
protocol, bootstrap, temperatures, precision, worker count), with the same one-line messages: a
settings object that exists is one ``evaluate`` accepts. What depends on the machine (is there a GPU)
is checked by :meth:`FeatureSettings.check_machine` where the work runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from spurbench._version import __version__
from spurbench.benchmarks import BenchmarkOptions, BenchmarkPlugin, get_benchmark
from spurbench.cache import content_digest
from spurbench.errors import SpurbenchError
from spurbench.files import stable_hash
from spurbench.metrics import MAX_BOOTSTRAP_DRAWS
from spurbench.pixelcache import DEFAULT_GB
from spurbench.preprocessing import check_protocol
from spurbench.protocols import EvalProtocol, scored_protocol
from spurbench.runtime import PRECISIONS, check_device, check_precision, check_workers
from spurbench.schemas import Strict

Precision = Literal["fp32", "bf16", "fp16"]
DEFAULT_BATCH_SIZE = 64
DEFAULT_SHARD_BATCHES = 8  # a shard is this many batches: the unit a killed run resumes from


class FeatureSettings(Strict):
    """How a model's features on a benchmark are computed (``spurbench.features``)."""

    model_config = ConfigDict(frozen=True)

    protocol: str = "paper"  # the benchmark's protocol to evaluate with (its own authors' code, or the model's transform)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1)
    shard_batches: int = Field(DEFAULT_SHARD_BATCHES, ge=1)
    device: str = "cpu"
    use_cache: bool = True
    progress: bool = True
    num_workers: int | None = None  # data-loader workers; None: the available cores - 1
    precision: Precision = "fp32"
    channels_last: bool = False
    pixel_cache: Path | None = None  # a folder of decoded uint8 inputs shared by models with the same preprocessing
    pixel_cache_gb: float = Field(DEFAULT_GB, gt=0)

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, protocol: str) -> str:
        check_protocol(protocol)
        return protocol

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, num_workers: int | None) -> int | None:
        return check_workers(num_workers)

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, precision: Any) -> Any:
        if precision not in PRECISIONS:
            raise SpurbenchError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        return precision

    @property
    def shard_size(self) -> int:
        """Images per cached shard (a multiple of the batch size, so a resumed run forms the same batches)."""
        return self.batch_size * self.shard_batches

    def check_machine(self) -> None:
        """One line if this machine lacks the device, or its autocast cannot run the precision. Called
        where the features are computed: a SLURM login node need not have its jobs' GPUs."""
        check_device(self.device)
        check_precision(self.precision, self.device)


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
    if not Path(checkpoint).is_file():
        raise SpurbenchError(f"checkpoint {str(checkpoint)!r} does not exist")
    return content_digest(checkpoint)


class RunSettings(Strict):
    """One model on one benchmark: what ``spurbench run`` and a sweep job decide, and ``evaluate`` takes.

    ``options`` are the benchmark's option values as its plugin parsed them (``model_dump``), so the
    settings serialise to JSON and parse back to the same options. ``spufix`` names a SpuFix artifact
    (a folder, ``hf://ORG/NAME[@REV]`` or ``auto``); the artifact itself is loaded by whoever runs.
    """

    model_config = ConfigDict(frozen=True)

    model: str  # FAMILY:SPEC (or a loaded adapter's name)
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
        if not 0 <= draws <= MAX_BOOTSTRAP_DRAWS:
            raise SpurbenchError(f"--bootstrap {draws}: use 0 to {MAX_BOOTSTRAP_DRAWS} draws")
        return draws

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
    def _parsed_options(cls, values: Any) -> Any:
        """The benchmark's plugin parses its options (one line for an unknown benchmark, option or value)
        and its protocol table must have the protocol asked for; the parsed options are what is kept."""
        if not isinstance(values, dict) or not isinstance(values.get("benchmark"), str):
            return values
        plugin = get_benchmark(values["benchmark"])
        options = plugin.parse_options(values.get("options") or {})
        features = values.get("features")
        protocol = features.protocol if isinstance(features, FeatureSettings) else (features or {}).get("protocol", "paper")
        check_protocol(protocol)
        scored_protocol(plugin.protocols_for(options), protocol, plugin.benchmark_name(options))
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
