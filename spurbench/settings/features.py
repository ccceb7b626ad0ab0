"""How a model's features are computed: the part of a run's settings the feature stream reads."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from spurbench.errors import SpurbenchError
from spurbench.pixelcache import DEFAULT_GB
from spurbench.preprocessing import check_protocol
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
    pixel_cache_gb: float = DEFAULT_GB

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

    @field_validator("pixel_cache_gb", mode="before")
    @classmethod
    def _pixel_cache_bound(cls, gb: Any) -> Any:  # the words of ``PixelCache.open``, which checks the same bound
        if isinstance(gb, bool) or not (isinstance(gb, (int, float)) and math.isfinite(gb) and gb > 0):
            raise SpurbenchError(f"--pixel-cache-gb must be a positive number of GB, not {gb!r}")
        return gb

    @property
    def shard_size(self) -> int:
        """Images per cached shard (a multiple of the batch size, so a resumed run forms the same batches)."""
        return self.batch_size * self.shard_batches

    def check_machine(self) -> None:
        """One line if this machine lacks the device, or its autocast cannot run the precision. Called
        where the features are computed: a SLURM login node need not have its jobs' GPUs."""
        check_device(self.device)
        check_precision(self.precision, self.device)
