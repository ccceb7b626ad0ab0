"""Running a planned sweep on submitit: one SLURM job array, the local executor (one job per GPU, or a
bounded number of CPU jobs at a time), or the debug executor (in this process, one job after another).

submitit writes each job's function and arguments as a pickle into the sweep's own folder and its
job process reads it back; that is submitit's transport, between processes of this sweep. spurbench
itself never calls ``job.result()`` (which unpickles what a job returned): outcomes are read from the
jobs' JSON status files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from filelock import FileLock, Timeout

from spurbench.errors import SpurbenchError
from spurbench.runtime import core_groups
from spurbench.sweeps import slurm
from spurbench.sweeps.entry import SweepJob
from spurbench.sweeps.jobs import SWEEP_DIR, JobSpec, JobStatus, Liveness, last_log_line, now, read_status, submitit_folder, write_status

EXECUTORS = ("slurm", "local", "debug")
SLURM_POLL_S = 10.0  # squeue's answer every 10 s: a job that died is noticed within about that


@dataclass
class ExecutorSettings:
    kind: str  # slurm | local | debug
    output: Path
    time_min: int = 240  # a job's time limit; at the limit submitit checkpoints and requeues it
    gpus_per_job: int | None = None  # SLURM; None: one for jobs on cuda, else none (``sweeps.driver.sweep_setup``)
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    partition: str | None = None
    constraint: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch options, --KEY=VALUE
    max_parallel: int | None = None  # jobs at a time (SLURM: the array's %N; local CPU jobs: default 1)
    gpus: list[int] = field(default_factory=list)  # local: the GPUs to pack jobs onto, one job per GPU
    max_requeues: int = 3


def check_settings(settings: ExecutorSettings) -> ExecutorSettings:
    if settings.kind not in EXECUTORS:
        raise SpurbenchError(f"unknown executor {settings.kind!r}; choose one of {', '.join(EXECUTORS)}")
    if settings.time_min < 1:
        raise SpurbenchError(f"--time {settings.time_min}: a job needs at least one minute")
    if settings.kind == "slurm":
        slurm.signal_delay_s(settings.time_min)  # refuses a limit too short to checkpoint in
    if settings.kind != "slurm" and (settings.partition or settings.constraint or settings.extra or settings.mem_gb):
        raise SpurbenchError(
            f"--partition, --constraint, --mem and --slurm-extra are SLURM options; the {settings.kind} executor has no use for them"
        )
    if settings.gpus and settings.kind != "local":
        raise SpurbenchError("--gpus packs jobs onto this machine's GPUs: it is an option of --executor local (SLURM takes --gpus-per-job)")
    if settings.kind == "slurm" and shutil.which("srun") is None:
        raise SpurbenchError("--executor slurm: no srun on this machine (submit from a SLURM login node, or use --executor local)")
    if len(set(settings.gpus)) != len(settings.gpus) or any(g < 0 for g in settings.gpus):
        raise SpurbenchError(f"--gpus {','.join(map(str, settings.gpus))}: list each GPU index once")
    return settings


def make_executor(settings: ExecutorSettings) -> submitit.Executor:
    """The submitit executor for these settings (its parameter errors become one line)."""
    folder = submitit_folder(settings.output)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        if settings.kind == "debug":
            return submitit.DebugExecutor(folder=folder)
        if settings.kind == "local":
            local = submitit.LocalExecutor(folder=folder, max_num_timeout=settings.max_requeues)
            local.update_parameters(timeout_min=settings.time_min)
            return local
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=settings.max_requeues)
        # USR2 comes signal_delay_s before the limit: time enough to requeue, never before the job has set its handler
        params: dict[str, Any] = {
            "job_name": "spurbench",
            "time": settings.time_min,
            "signal_delay_s": slurm.signal_delay_s(settings.time_min),
            "array_parallelism": settings.max_parallel or 256,
        }
        if settings.gpus_per_job:
            params["gpus_per_node"] = settings.gpus_per_job
        optional = {
            "cpus_per_task": settings.cpus_per_job,
            "partition": settings.partition,
            "constraint": settings.constraint,
            "mem": f"{int(settings.mem_gb * 1024)}MB" if settings.mem_gb else None,
        }  # SLURM takes no fractions
        params.update({k: v for k, v in optional.items() if v is not None})
        if settings.extra:
            params["additional_parameters"] = dict(settings.extra)
        executor.update_parameters(**params)
        return executor
    except ValueError as exc:  # submitit lists every valid parameter; its first line says what is wrong
        raise SpurbenchError(f"submitit refused the {settings.kind} settings: {str(exc).splitlines()[0]}") from None


def job_liveness(status: JobStatus) -> Liveness:
    """Whether a job recorded as queued or running is still in flight (so it is not submitted twice),
    has ended (killed, cancelled, lost with its node or its cluster's state), or cannot be told just
    now (another machine's local process; SLURM not answering)."""
    if status.executor == "local":
        if status.host != socket.gethostname() and status.host is not None:
            return "unknown"  # another machine's process: not ours to judge
        pid = status.pid or (int(status.job_id) if status.job_id and status.job_id.isdigit() else None)
        if pid is None:
            return "ended"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "ended"
        except PermissionError:
            return "in flight"
        return "in flight"
    if status.executor == "slurm" and status.job_id:
        states = slurm.job_states([status.job_id])
        if states is None:
            return "unknown"
        return "ended" if slurm.has_ended(states[status.job_id]) else "in flight"
    return "ended"


def _queued(spec: JobSpec, kind: str) -> JobStatus:
    previous = read_status(spec.output, spec.key)
    return write_status(JobStatus(spec=spec, state="queued", attempts=previous.attempts if previous else 0, executor=kind))


def _submitted(status: JobStatus, job: submitit.Job) -> JobStatus:
    current = read_status(status.spec.output, status.spec.key) or status
    if current.state != "queued":  # the job has started and recorded its own id and log: leave its record alone
        return current
    return write_status(current.model_copy(update={"job_id": str(job.job_id), "log": str(job.paths.stderr)}))


def _settle(spec: JobSpec, job: submitit.Job | None, scheduler_state: str | None = None) -> JobStatus:
    """The final status of a job whose process has ended: what it recorded, or failed with why and
    its log's last line when it ended without recording an outcome (killed, cancelled, out of memory,
    node lost). A job SLURM cancelled is said to be cancelled, whatever its log's last words."""
    status = read_status(spec.output, spec.key)
    cancelled = scheduler_state == "CANCELLED"
    if status is not None and (status.state == "done" or (status.state == "failed" and not cancelled)):
        return status
    job_id = (status.job_id if status is not None else None) or (str(job.job_id) if job is not None else "?")
    state = scheduler_state or (job.state if job is not None else "unknown")
    log = (status.log if status is not None else None) or (str(job.paths.stderr) if job is not None else None)
    line = last_log_line(log)
    base = status or JobStatus(spec=spec, state="failed", executor="?")
    return write_status(
        base.model_copy(
            update={
                "state": "failed",
                "finished": now(),
                "error": slurm.ending_reason(state, job_id) + (f"; last log line: {line}" if line else ""),
            }
        )
    )


def run_sweep(
    specs: Sequence[JobSpec],
    settings: ExecutorSettings,
    on_update: Callable[[list[JobStatus]], None] | None = None,
    wait: bool = True,
    poll_s: float = 1.0,
) -> list[JobStatus]:
    """Submit every job and (``wait``) follow them to the end; ``on_update`` gets all statuses on each poll."""
    check_settings(settings)
    with _driving(settings.output):
        return _run(specs, settings, on_update, wait, poll_s)


@contextlib.contextmanager
def _driving(output: Path) -> Iterator[None]:
    """One driver per output folder at a time: a second would submit the same jobs again."""
    (output / SWEEP_DIR).mkdir(parents=True, exist_ok=True)
    lock = FileLock(output / SWEEP_DIR / "driver.lock")
    try:
        lock.acquire(timeout=0)  # a try-lock: a second driver is refused, never queued behind the first
    except Timeout:
        raise SpurbenchError(f"another spurbench sweep is running jobs into {output}; wait for it, or use another --output") from None
    try:
        yield
    finally:
        lock.release()  # the kernel's lock: also released if this process dies


def _submit(submit: Callable[[], Any], kind: str) -> Any:
    try:
        return submit()
    except Exception as exc:  # sbatch refused the job (a bad partition, account, array size): its first line
        text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise SpurbenchError(f"the {kind} executor refused the submission: {text}") from None


def _run(
    specs: Sequence[JobSpec], settings: ExecutorSettings, on_update: Callable[[list[JobStatus]], None] | None, wait: bool, poll_s: float
) -> list[JobStatus]:
    executor = make_executor(settings)
    if settings.kind == "slurm":
        slurm.check_accounting()  # before anything is submitted
    statuses = {spec.key: _queued(spec, settings.kind) for spec in specs}
    update = (lambda: on_update(list(statuses.values()))) if on_update else (lambda: None)
    update()
    if settings.kind == "debug":  # in this process, one after another: the job runs when asked whether it is done
        for spec in specs:
            job = _submit(lambda: executor.submit(SweepJob("debug"), spec.model_dump(mode="json")), settings.kind)  # noqa: B023 (called at once)
            statuses[spec.key] = _submitted(statuses[spec.key], job)
            update()
            job.done()
            statuses[spec.key] = _settle(spec, job)
            update()
        return list(statuses.values())
    jobs: dict[str, submitit.Job] = {}
    slots: dict[Any, str | None] = {}
    pending: deque[JobSpec] = deque()
    if settings.kind == "slurm":  # one sbatch --array; SLURM grants each job its CPUs
        submitted = _submit(lambda: executor.map_array(SweepJob("slurm"), [s.model_dump(mode="json") for s in specs]), "slurm")
        for spec, job in zip(specs, submitted):
            jobs[spec.key] = job
            statuses[spec.key] = _submitted(statuses[spec.key], job)
    else:
        pending.extend(specs)
        slots = dict.fromkeys(settings.gpus) if settings.gpus else {f"cpu{i}": None for i in range(settings.max_parallel or 1)}
    cores = dict(zip(slots, core_groups(len(slots)))) if slots else {}  # jobs packed onto this machine share its cores
    update()
    if not wait:
        return list(statuses.values())
    by_key = {spec.key: spec for spec in specs}
    asked_slurm = 0.0
    while pending or jobs:
        for slot, key in list(slots.items()):
            if key is None and pending:
                spec = pending.popleft()
                if isinstance(slot, int):  # one GPU per job: the job sees only this one (as cuda:0)
                    executor.update_parameters(visible_gpus=[slot], gpus_per_node=1)
                function = SweepJob(settings.kind, cores[slot] or None)
                jobs[spec.key] = _submit(lambda: executor.submit(function, spec.model_dump(mode="json")), settings.kind)  # noqa: B023 (called at once)
                statuses[spec.key] = _submitted(statuses[spec.key], jobs[spec.key])
                slots[slot] = spec.key
        records = {key: read_status(by_key[key].output, key) for key in jobs}  # each job's own record, read once a poll
        endings: dict[str, str | None] = {}
        if settings.kind == "slurm":  # a job that recorded its result is done; SLURM says which others ended
            endings = {key: None for key, record in records.items() if record is not None and record.state == "done"}
            if time.monotonic() - asked_slurm >= SLURM_POLL_S:
                asked_slurm = time.monotonic()
                endings = _slurm_endings(jobs) | endings
        else:
            endings = {key: None for key, job in jobs.items() if _ended(job)}
        for key, job in list(jobs.items()):
            if key in endings:
                statuses[key] = _settle(by_key[key], job, endings[key])
                del jobs[key]
                slots.update({slot: None for slot, held in slots.items() if held == key})
            else:
                statuses[key] = records[key] or statuses[key]
        update()
        if pending or jobs:
            time.sleep(poll_s)
    return list(statuses.values())


def _slurm_endings(jobs: dict[str, submitit.Job]) -> dict[str, str | None]:
    """The jobs SLURM says have ended (a requeued job has not: it waits in the queue), with its state;
    none while SLURM does not answer."""
    states = slurm.job_states(str(job.job_id) for job in jobs.values())
    if states is None:
        return {}
    return {key: states[str(job.job_id)] for key, job in jobs.items() if slurm.has_ended(states[str(job.job_id)])}


def _ended(job: submitit.Job) -> bool:
    try:
        return bool(job.done())
    except Exception:  # the local executor's process table unreadable for a moment: ask again on the next poll
        return False


__all__ = ["EXECUTORS", "ExecutorSettings", "check_settings", "job_liveness", "make_executor", "run_sweep"]
