"""What a run decides, typed, built once and passed down: ``FeatureSettings`` (how features are computed,
the part the feature stream reads), ``RunSettings`` (one model on one benchmark: everything
``evaluate`` needs besides the loaded objects) and ``RunOptions`` (what ``spurbench run`` and
``spurbench sweep`` share: a ``RunSettings`` for each of their models and benchmarks).

All are frozen pydantic models that refuse unknown keys, so a sweep job carries its run as JSON and a
misspelt key fails where the job is planned, not inside a running SLURM job. Building a ``RunSettings``
checks every value ``evaluate`` would check without loading anything (benchmark and its options,
protocol, model name and the label space it declares, checkpoint file, bootstrap, temperatures,
precision, worker count), with the same one-line messages: a settings object that exists is one
``evaluate`` accepts. What depends on the machine (is there a GPU) is checked by
:meth:`FeatureSettings.check_machine` where the work runs.
"""

from __future__ import annotations

from spurbench.settings.features import DEFAULT_BATCH_SIZE, DEFAULT_SHARD_BATCHES, FeatureSettings, Precision
from spurbench.settings.options import RunEntry, RunOptions
from spurbench.settings.run import RunSettings, check_bootstrap, check_checkpoint, check_temperature, checkpoint_identity

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_SHARD_BATCHES",
    "FeatureSettings",
    "Precision",
    "RunEntry",
    "RunOptions",
    "RunSettings",
    "check_bootstrap",
    "check_checkpoint",
    "check_temperature",
    "checkpoint_identity",
]
