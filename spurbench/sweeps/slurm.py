"""What SLURM says about a sweep's jobs, asked directly of ``squeue`` and ``sacct``.

submitit's own watcher asks only ``sacct``, backs off between polls (a killed job was noticed minutes
late) and counts a job it cannot find as in flight, forever. Here ``squeue`` answers for the jobs the
controller still holds (queued, running, requeued, and recently ended ones, ``--states=all``), and
``sacct`` for the rest; a job neither knows is lost (its cluster was restarted with fresh state, or
the record came from another cluster), not in flight.

The time-limit signal (``--signal=USR2@delay``) is placed so that a job has started Python and set
submitit's handler before it comes (``signal_delay_s``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from spurbench.errors import SpurbenchError

# States after which a job runs no more (a requeued job passes through REQUEUED and PENDING instead).
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED")
LOST = "LOST"  # neither squeue nor sacct knows the job

# Measured on a one-node Debian cluster (docs/measured.md): USR2 came 7-30 s before the time that
# --signal asked for (slurmctld checks time limits on a coarse timer), and a sweep job set submitit's
# handler about 1 s after it started. A shared filesystem's cold imports are slower, hence the bound.
SIGNAL_EARLY_S = 30
STARTUP_BOUND_S = 30
CHECKPOINT_WINDOW_S = 10  # at least this long between the signal and the limit: checkpoint, then requeue
LONGEST_DELAY_S = 120
QUERY_TIMEOUT_S = 60


def signal_delay_s(time_min: int) -> int:
    """Seconds before the limit at which SLURM sends USR2: as long as 2 minutes, but never so long that
    the signal could come before the job has set its handler (the default action of USR2 kills a
    job, and it is not requeued). A one-line SpurbenchError for a limit too short for both."""
    room = time_min * 60 - SIGNAL_EARLY_S - STARTUP_BOUND_S
    if room < CHECKPOINT_WINDOW_S:
        shortest = -(-(SIGNAL_EARLY_S + STARTUP_BOUND_S + CHECKPOINT_WINDOW_S) // 60)
        raise SpurbenchError(
            f"--time {time_min}: too short for SLURM: a job may need {STARTUP_BOUND_S} s to start before it can be"
            f" checkpointed, and SLURM's time-limit signal can come {SIGNAL_EARLY_S} s early; use --time {shortest} or more"
        )
    return min(LONGEST_DELAY_S, room)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise SpurbenchError(f"{command[0]} is not on this machine's PATH: submit from a SLURM login node") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, 1, "", f"{command[0]} did not answer within {QUERY_TIMEOUT_S} s")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def check_accounting() -> None:
    """Refuse, in one line, a cluster whose ``sacct`` does not answer: without accounting a job that
    ended is gone from SLURM once the controller forgets it, so a cancelled or lost job could not be
    told from one in flight."""
    answer = _run(["sacct", "--noheader", "--allocations", "--format=JobID", "--starttime=now"])
    if answer.returncode != 0:
        raise SpurbenchError(
            f"--executor slurm needs SLURM accounting (slurmdbd), and sacct says: {_first_line(answer.stderr + answer.stdout)};"
            " ask the cluster's admins for AccountingStorageType=accounting_storage/slurmdbd, or use --executor local"
        )


def _states(lines: str) -> dict[str, str]:
    states: dict[str, str] = {}
    for line in lines.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state:
            states[job_id] = state.split(" ")[0].rstrip("+")  # "CANCELLED by 0", "CANCELLED+"
    return states


def job_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """Each job's SLURM state (``squeue``'s %T / ``sacct``'s State; ``LOST`` where neither knows it),
    or None when SLURM cannot be asked just now (the controller restarting): ask again later."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    queue = _run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--me"])
    if queue.returncode != 0:
        return None
    states = {job_id: state for job_id, state in _states(queue.stdout).items() if job_id in wanted}
    missing = [job_id for job_id in wanted if job_id not in states]
    if missing:
        accounts = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State", f"--jobs={','.join(missing)}"])
        if accounts.returncode != 0:
            return None
        known = _states(accounts.stdout)
        states.update({job_id: known.get(job_id, LOST) for job_id in missing})
    return states


def has_ended(state: str) -> bool:
    return state in FINISHED or state == LOST


def ending_reason(state: str, job_id: str) -> str:
    """Why a job ended without recording a result, in the user's words."""
    if state == "CANCELLED":
        return f"cancelled in SLURM (scancel, or an administrator; job {job_id})"
    if state == LOST:
        return f"lost: SLURM knows no job {job_id} (neither squeue nor sacct; a cluster restarted with fresh state numbers jobs anew)"
    if state == "TIMEOUT":
        return f"reached its time limit and was not requeued (job {job_id})"
    return f"job ended without a result ({state})"


__all__ = [
    "FINISHED",
    "LOST",
    "SIGNAL_EARLY_S",
    "STARTUP_BOUND_S",
    "check_accounting",
    "ending_reason",
    "has_ended",
    "job_states",
    "signal_delay_s",
]
