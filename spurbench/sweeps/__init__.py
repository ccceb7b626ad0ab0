"""Sweeps: one job per (model, benchmark), planned first (``plan``: run, skip or invalid, each job with
its checked ``RunSettings``), run by submitit (SLURM job arrays, the local executor packing jobs onto
GPUs, or the in-process debug executor; ``executors``), each job recording its status (``jobs``).
``driver`` settles the executor's resources and the jobs' options before the plan; ``slurm`` asks
SLURM about the jobs; ``entry`` is what a job's process unpickles.

The names below are handed on lazily: a job's process imports ``spurbench.sweeps.entry`` through this
package, and must not load torch before submitit has set its signal handlers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spurbench.sweeps.driver import SweepSetup, local_gpus, retry_device, sweep_setup
    from spurbench.sweeps.plan import Invalid, Skipped, SkipReason, SweepPlan, failed_jobs, plan_sweep

# name -> the module that defines it
NAMES = {
    "SweepSetup": "spurbench.sweeps.driver",
    "local_gpus": "spurbench.sweeps.driver",
    "retry_device": "spurbench.sweeps.driver",
    "sweep_setup": "spurbench.sweeps.driver",
    "Invalid": "spurbench.sweeps.plan",
    "Skipped": "spurbench.sweeps.plan",
    "SkipReason": "spurbench.sweeps.plan",
    "SweepPlan": "spurbench.sweeps.plan",
    "failed_jobs": "spurbench.sweeps.plan",
    "plan_sweep": "spurbench.sweeps.plan",
}

__all__ = [
    "Invalid",
    "SkipReason",
    "Skipped",
    "SweepPlan",
    "SweepSetup",
    "failed_jobs",
    "local_gpus",
    "plan_sweep",
    "retry_device",
    "sweep_setup",
]

if not TYPE_CHECKING:  # hidden from type checkers, so that a misspelt name is their error, not Any

    def __getattr__(name: str) -> Any:
        if name not in NAMES:
            raise AttributeError(f"module 'spurbench.sweeps' has no attribute {name!r}")
        # lazy: see the module's docstring
        return getattr(importlib.import_module(NAMES[name]), name)

    def __dir__() -> list[str]:
        return sorted({*globals(), *NAMES})
