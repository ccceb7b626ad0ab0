"""One sweep job: what it evaluates (``JobSpec``: its ``RunSettings``), what it reports (``JobStatus``),
and ``run_job``, which makes the same ``evaluate`` call ``spurbench run`` makes (submitit calls it through
``sweeps.entry.SweepJob``).

A job's status lives in ``<output>/.sweep/jobs/<key>.json``, written atomically by the job (and by the
driver when it queues it), so the driver, a later ``--retry-failed`` and a user with ``cat`` read the
same record. Every job writes only its own status file and its own result file (atomically, see
``results.write_result``); the board is built by the driver once all jobs have ended.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import submitit
from pydantic import model_validator

from spurbench.errors import SpurbenchError
from spurbench.files import atomic_path, check_inside, real_inside, strict_json
from spurbench.harness import evaluate, load_spufix, spufix_reference
from spurbench.runs import is_complete
from spurbench.schemas import Strict, first_error
from spurbench.settings import RunSettings

SWEEP_DIR = ".sweep"
State = Literal["queued", "running", "done", "failed"]
# of a job recorded as queued or running: its executor's answer (``executors.job_liveness``)
Liveness = Literal["in flight", "ended", "unknown"]


class JobSpec(Strict):
    """Everything one (model, benchmark) job needs, as JSON: it travels to the job's process. Its
    settings are checked where the job is planned (and again where it is read back)."""

    key: str  # the result file's stem, unique in the sweep
    settings: RunSettings  # output: absolute, so a retry from another folder writes where the sweep did
    config_hash: str  # as planned; the job refuses to run if its settings hash otherwise by then

    @model_validator(mode="after")
    def _has_output(self) -> JobSpec:
        if self.settings.output is None:
            raise ValueError("a job's settings name its output folder")
        return self

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def benchmark(self) -> str:
        return self.settings.benchmark  # the plugin's name

    @property
    def output(self) -> str:
        return str(self.settings.output)

    @property
    def result_file(self) -> str:
        return str(Path(self.output) / f"{self.key}.json")


class JobStatus(Strict):
    spec: JobSpec
    state: State
    attempts: int = 0  # times the job started (a requeued or retried job starts again)
    executor: str
    job_id: str | None = None  # the executor's id (SLURM array job id, local process id)
    host: str | None = None
    pid: int | None = None
    visible_gpus: str | None = None  # CUDA_VISIBLE_DEVICES in the job (a local job packed onto one GPU sees only it)
    started: str | None = None
    finished: str | None = None
    error: str | None = None  # the job's one-line error, when it failed
    log: str | None = None  # the job's log file (stderr), where the executor keeps one


def submitit_folder(output: str | Path) -> Path:
    """Where submitit keeps the sweep's job folders (``%j``: one per job id)."""
    return Path(output) / SWEEP_DIR / "submitit" / "%j"


def status_dir(output: str | Path) -> Path:
    return Path(output) / SWEEP_DIR / "jobs"


def status_path(output: str | Path, key: str) -> Path:
    return status_dir(output) / f"{key}.json"


def check_sweep_folders(output: str | Path) -> None:
    """The sweep's own folders under ``output`` (``.sweep``, its ``jobs`` and ``submitit``) are folders
    inside it, or absent: a file in their place, or a link out, fails here in one line, not mid-sweep."""
    for folder in (Path(output) / SWEEP_DIR, status_dir(output), Path(output) / SWEEP_DIR / "submitit"):
        if folder.is_symlink() or folder.exists():
            check_inside(output, folder, "the sweep's folder")
            if not folder.is_dir():
                raise SpurbenchError(f"{folder}: is not a folder (the sweep keeps its job records there); move it out of --output")


def write_status(status: JobStatus) -> JobStatus:
    path = status_path(status.spec.output, status.spec.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(status.model_dump_json(indent=1) + "\n")
    return status


def record_problem(status: JobStatus, output: str | Path, key: str) -> str | None:
    """Why a record read from ``output``'s jobs folder under ``key`` cannot be trusted, or None. A job
    writes its status and result where its record says, so a record naming another folder (edited,
    or copied from another sweep) would make a retry write outside ``output``."""
    spec = status.spec
    if spec.key != key:
        return f"it names the job {spec.key!r}, not {key!r}"
    if os.path.realpath(spec.output) != os.path.realpath(output):
        return f"its output folder is {spec.output}, not {output}"
    expected = Path(spec.output) / f"{key}.json"
    if Path(spec.result_file) != expected or not real_inside(output, spec.result_file):
        return f"its result file {spec.result_file} is not {expected} inside {output}"
    return None


def _read_record(path: Path, output: str | Path) -> tuple[JobStatus | None, str | None]:
    """(the record, None), or (None, why not) for a record that is unreadable, not a job record, or
    whose paths lead out of ``output``; (None, None) where there is none."""
    try:
        text = path.read_text(encoding="utf-8")
        status = JobStatus.model_validate_json(text)
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})"
    except ValueError as exc:  # ValidationError (pydantic's JSON parser reports truncation as one)
        if _untyped_record(text):
            return None, "a job record of an earlier spurbench (its run options are not typed settings): plan the sweep again"
        return None, "not a job record: " + first_error(exc, limit=160).message
    except SpurbenchError as exc:  # its settings no longer hold here: a checkpoint gone, a plugin uninstalled
        return None, f"its settings no longer hold: {' '.join(str(exc).split())}"
    problem = record_problem(status, output, path.stem)
    return (None, problem) if problem else (status, None)


def _untyped_record(text: str) -> bool:
    """A record written before jobs carried ``RunSettings`` (its spec has a ``run`` dict of keyword options)."""
    try:
        record = strict_json(text)
    except ValueError:
        return False
    spec = record.get("spec") if isinstance(record, dict) else None
    return isinstance(spec, dict) and isinstance(spec.get("run"), dict) and "settings" not in spec


def read_status(output: str | Path, key: str) -> JobStatus | None:
    """The job's last recorded status; None if there is none or it cannot be trusted (a fresh start)."""
    return _read_record(status_path(output, key), output)[0]


def read_records(output: str | Path) -> tuple[list[JobStatus], list[str]]:
    """Every job record of ``output``, and one line for each record that cannot be used (unreadable,
    truncated, or leading out of ``output``)."""
    folder = status_dir(output)
    good, bad = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        status, problem = _read_record(path, output)
        if status is not None:
            good.append(status)
        elif problem is not None:
            bad.append(f"{path}: {problem}")
    return good, bad


def last_log_line(path: str | Path | None) -> str | None:
    """The last non-empty line of a job's log (progress-bar carriage returns and colours removed)."""
    if path is None:
        return None
    for candidate in (Path(path), Path(str(path)).with_suffix(".out")):
        try:
            with open(candidate, "rb") as handle:
                handle.seek(max(0, os.path.getsize(candidate) - 8192))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line.split("\r")[-1]).strip() for line in text.splitlines()]
        lines = [line for line in lines if line]
        if lines:
            return lines[-1]
    return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_job(spec: JobSpec, executor: str) -> JobStatus:
    """Evaluate one model on one benchmark, as ``spurbench run`` does, and record the outcome.

    Errors are caught and recorded (one line in the status and on stderr), never raised: the debug
    executor would open a debugger on them, and a SLURM array should not lose its other jobs' logs.
    A job killed outright leaves its status at "running"; the driver notices the job has ended.
    """

    previous = read_status(spec.output, spec.key)
    job_id, log = _job_identity(previous)
    status = JobStatus(
        spec=spec,
        state="running",
        attempts=(previous.attempts if previous else 0) + 1,
        executor=executor,
        job_id=job_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        started=now(),
        visible_gpus=os.environ.get("CUDA_VISIBLE_DEVICES"),
        log=log,
    )
    try:
        write_status(status)
        target = Path(spec.result_file)
        # a requeued job whose first run had finished has nothing left to do; under --force it evaluates
        # again (from the cached features)
        settings = spec.settings
        if settings.force or not is_complete(target, spec.config_hash):
            artifact = load_spufix(settings.spufix, settings.model)
            if settings.config_hash(spufix_reference(artifact)) != spec.config_hash:  # checked before the forward, not after it
                raise SpurbenchError(
                    f"{spec.model}: its configuration changed since the sweep was planned (a checkpoint, artifact or spurbench version); plan the sweep again"
                )
            evaluate(settings, spufix=artifact)
        status = status.model_copy(update={"state": "done", "finished": now()})
    except SpurbenchError as exc:
        status = status.model_copy(update={"state": "failed", "error": str(exc), "finished": now()})
        print(f"error: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # a bug: keep the traceback in the job's log, the one line in its status
        traceback.print_exc()
        status = status.model_copy(update={"state": "failed", "error": f"{type(exc).__name__}: {exc}", "finished": now()})
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    return write_status(status)


def _job_identity(previous: JobStatus | None) -> tuple[str | None, str | None]:
    """This job's executor id and log, from submitit's environment (the driver records them too, but a
    job may start before the driver has written them)."""
    try:
        env = submitit.JobEnvironment()
        return str(env.job_id), str(env.paths.stderr)
    except Exception:  # not under submitit (a direct call), or an executor without a job folder (debug)
        return (previous.job_id, previous.log) if previous else (None, None)


__all__ = [
    "SWEEP_DIR",
    "JobSpec",
    "JobStatus",
    "Liveness",
    "check_sweep_folders",
    "last_log_line",
    "read_records",
    "read_status",
    "record_problem",
    "run_job",
    "status_path",
    "write_status",
]
