"""What a run decides, typed, built once and passed down: ``FeatureSettings`` (how features are computed,
the part the feature stream reads), ``RunSettings`` (one model on one benchmark: everything
``evaluate`` needs besides the loaded objects) and ``RunOptions`` (what ``spurbench run`` and
``spurbench sweep`` share: a ``RunSettings`` for each of their models and benchmarks); and one per
other model command: ``SpuFixFitSettings`` (``fit_spufix``), ``DiscoverySettings`` (``discover``) and
``MiningSettings`` (``mine``), on the shared ``CommandSettings`` and ``TrainingSettings``.

All are frozen pydantic models that refuse unknown keys, so a sweep job carries its run as JSON and a
misspelt key fails where the job is planned, not inside a running SLURM job. Building a ``RunSettings``
checks every value ``evaluate`` would check without loading anything (benchmark and its options,
protocol, model name and the label space it declares, checkpoint file, bootstrap, temperatures,
precision, worker count), with the same one-line messages: a settings object that exists is one
``evaluate`` accepts. The command settings likewise check every value their function would refuse
before it loads anything, in the command's words. What depends on the machine (is there a GPU) is
checked by :meth:`FeatureSettings.check_machine` where the work runs.
"""

from __future__ import annotations

from spurbench.settings.command import CommandSettings
from spurbench.settings.discovery import BASES, NPFV_STEPS, BasisKind, DiscoverySettings
from spurbench.settings.features import DEFAULT_BATCH_SIZE, DEFAULT_SHARD_BATCHES, FeatureSettings, Precision
from spurbench.settings.mining import DEDUP_COSINE, PER_COMPONENT, PREDICTED, MiningSettings, Predicted
from spurbench.settings.options import RunEntry, RunOptions
from spurbench.settings.run import RunSettings, check_bootstrap, check_checkpoint, check_temperature, checkpoint_identity
from spurbench.settings.spufix_fit import SpuFixFitSettings
from spurbench.settings.training import TrainingSettings

__all__ = [
    "BASES",
    "DEDUP_COSINE",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_SHARD_BATCHES",
    "NPFV_STEPS",
    "PER_COMPONENT",
    "PREDICTED",
    "BasisKind",
    "CommandSettings",
    "DiscoverySettings",
    "FeatureSettings",
    "MiningSettings",
    "Precision",
    "Predicted",
    "RunEntry",
    "RunOptions",
    "RunSettings",
    "SpuFixFitSettings",
    "TrainingSettings",
    "check_bootstrap",
    "check_checkpoint",
    "check_temperature",
    "checkpoint_identity",
]
