"""The callable submitit runs in a job's process: light to import on purpose.

submitit sets its signal handlers (USR2: checkpoint and requeue at a time limit; TERM: carry on) only
after it has unpickled this callable, so everything this module imports delays them. It imports no
torch: ``SweepJob`` pulls in the evaluation (``sweeps.jobs``, torch and all) only when called, and a
time-limit signal that comes while torch loads finds the handler already set (``sweeps.slurm``).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import submitit


class SweepJob(submitit.helpers.Checkpointable):
    """One sweep job. On preemption or a time limit submitit calls ``checkpoint`` (inherited: the same
    call again) and requeues the job; the requeued run reads the finished feature shards from the
    cache, so no finished shard is forwarded twice. ``cores``: the CPUs a local job packed onto this
    machine with others may use (SLURM grants a job's CPUs itself)."""

    def __init__(self, executor: str, cores: list[int] | None = None):
        self.executor = executor
        self.cores = cores

    def __call__(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        if self.cores:  # before torch loads, so that its thread pool is sized for these cores
            os.sched_setaffinity(0, self.cores)
        # lazy: torch, timm and the benchmarks load only now, after submitit's handlers are set
        from spurbench.errors import SpurbenchError
        from spurbench.runtime import confine_torch_threads
        from spurbench.sweeps.jobs import JobSpec, run_job

        confine_torch_threads()
        try:
            try:
                job = JobSpec.model_validate(spec)
            except SpurbenchError as exc:  # its settings do not hold where it runs (no such checkpoint on this node):
                print(f"error: {exc}", file=sys.stderr, flush=True)  # the driver records this last log line
                return None
            return run_job(job, self.executor).model_dump(mode="json")
        finally:
            if self.executor != "debug":  # (a debug job runs in the driver's own process)
                ignore_time_limit_signal()


def ignore_time_limit_signal() -> None:
    """Once a job's work is over, SLURM's time-limit USR2 has nothing left to save: caught, it would
    checkpoint and requeue finished work; and once Python's shutdown has restored USR2's default
    action, it kills the finished job (srun: "task 0: User defined signal 2", the job FAILED in
    sacct). A job that ends within ``--signal``'s window before its limit meets it; ignored, it cannot."""
    if hasattr(signal, "SIGUSR2"):  # (not on Windows)
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)


__all__ = ["SweepJob"]
