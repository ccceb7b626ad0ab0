"""What a sweep settles before its plan: the executor's resources for the jobs' device (the GPUs a local
sweep packs jobs onto, the GPUs of a SLURM job) and the options every new job runs with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from spurbench.errors import SpurbenchError
from spurbench.runs import check_data_path
from spurbench.runtime import default_workers
from spurbench.settings import RunOptions
from spurbench.sweeps.executors import ExecutorSettings, check_settings
from spurbench.sweeps.jobs import JobSpec


@dataclass(frozen=True)
class SweepSetup:
    executor: ExecutorSettings  # completed and checked
    options: RunOptions  # what every newly planned job runs with


def sweep_setup(options: RunOptions, executor: ExecutorSettings, gpus: str | None, retried: Sequence[JobSpec] = ()) -> SweepSetup:
    """The executor's settings completed for the jobs' device (retried jobs keep the device they were
    planned with), and the options new jobs run with: on cuda when packed onto local GPUs (each job sees
    only its own), this machine's cores shared by the jobs packed onto it, the pixel cache by its
    absolute path. Anything wrong is one line, before anything is submitted; a SLURM login node need
    not have the jobs' GPUs (their device is checked in the jobs)."""
    device = retry_device(retried) if retried else options.features.device
    gpu_list = local_gpus(gpus, device, executor.kind)
    if executor.kind != "slurm":
        options.features.model_copy(update={"device": device}).check_machine()
    per_job = executor.gpus_per_job if executor.gpus_per_job is not None else int(device.startswith("cuda"))
    checked = check_settings(replace(executor, gpus=gpu_list, gpus_per_job=per_job if executor.kind == "slurm" else 0))
    check_data_path(options)
    features = options.features
    update: dict[str, Any] = {"device": "cuda" if gpu_list else features.device}
    if features.pixel_cache is not None:
        update["pixel_cache"] = features.pixel_cache.resolve()  # a job may run from another folder
    if features.num_workers is None and executor.kind == "local":  # packed jobs share this machine's cores
        update["num_workers"] = default_workers(processes_per_node=len(gpu_list) or executor.max_parallel or 1)
    return SweepSetup(checked, options.model_copy(update={"features": features.model_copy(update=update)}))


def retry_device(specs: Sequence[JobSpec]) -> str:
    """The device that decides a retry's resources: cuda where any retried job runs on cuda."""
    devices = {spec.settings.features.device for spec in specs}
    return "cuda" if any(d.startswith("cuda") for d in devices) else devices.pop()


def local_gpus(gpus: str | None, device: str, executor: str) -> list[int]:
    """--gpus as a list of indices; by default every GPU when local jobs run on cuda."""
    if gpus is None:
        if executor == "local" and device.startswith("cuda"):
            return list(range(torch.cuda.device_count()))
        return []
    try:
        parts = [int(p) for p in gpus.split(",")]
    except ValueError:
        raise SpurbenchError(f"--gpus {gpus!r}: a count N or a list of GPU indices such as 0,1,3") from None
    listed = list(range(parts[0])) if len(parts) == 1 and "," not in gpus else parts
    if not listed:
        raise SpurbenchError("--gpus 0: name at least one GPU (or leave --gpus out for CPU jobs)")
    if device not in ("cuda", "cuda:0"):
        raise SpurbenchError(f"--gpus gives each job one GPU, which it sees as cuda: use --device cuda, not {device!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if max(listed) >= count:
        raise SpurbenchError(f"--gpus {gpus}: this machine has {count} CUDA device(s)")
    return listed


__all__ = ["SweepSetup", "local_gpus", "retry_device", "sweep_setup"]
