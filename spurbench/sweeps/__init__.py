"""Sweeps: one job per (model, benchmark), planned first (``plan``: run, skip or invalid, each job with
its checked ``RunSettings``), run by submitit (SLURM job arrays, the local executor packing jobs onto
GPUs, or the in-process debug executor; ``executors``), each job recording its status (``jobs``).
``driver`` settles the executor's resources and the jobs' options before the plan."""

from __future__ import annotations

from spurbench.sweeps.driver import SweepSetup, local_gpus, retry_device, sweep_setup
from spurbench.sweeps.plan import Invalid, Skipped, SkipReason, SweepPlan, failed_jobs, plan_sweep

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
