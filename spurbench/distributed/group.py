"""The process group under torchrun: joining it (``setup``, ``joined``), who this process is (``rank``,
``world_size``, ``is_main``), and how a failure becomes one line on every rank: a collective that
fails or times out (``collective``), and the SIGTERM torchrun sends the surviving ranks.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from spurbench.errors import SpurbenchError

TIMEOUT_ENV = "SPURBENCH_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0  # torch's own default: ranks wait for rank 0's NPFVs and writes between classes
TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise SpurbenchError(f"{name}={os.environ[name]!r}: expected an integer (torchrun sets it)") from None


def timeout_seconds() -> float:
    """How long a collective waits for the other ranks (``SPURBENCH_DISTRIBUTED_TIMEOUT``, seconds)."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e9:  # (also no NaN, no infinity: timedelta refuses those)
        raise SpurbenchError(f"{TIMEOUT_ENV}={text!r}: expected a positive number of seconds")
    return value


def active() -> bool:
    """Whether this process is one of several ranks of an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that prints, finalises and writes."""
    return rank() == 0


def who() -> str:
    return f"rank {rank()} of {world_size()}"


def setup(device: str = "cpu") -> str:
    """Join torchrun's process group (once per process) and return the device this rank computes on:
    ``cuda`` becomes ``cuda:LOCAL_RANK``. Without torchrun's environment nothing happens."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return device
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise SpurbenchError(f"WORLD_SIZE={world} but {missing[0]} is not set; start data-parallel runs with torchrun")
    local = _env_int("LOCAL_RANK", 0)
    parsed = torch.device(device)
    backend = "gloo"  # every statistic is reduced as a float64 CPU tensor, which gloo carries
    if parsed.type == "cuda":
        if parsed.index is not None and parsed.index != local:
            raise SpurbenchError(f"--device {device} under torchrun: each rank uses cuda:LOCAL_RANK; pass --device cuda")
        if local >= torch.cuda.device_count():
            raise SpurbenchError(
                f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA device(s); start at most that many processes per node"
            )
        torch.cuda.set_device(local)
        device, backend = f"cuda:{local}", "cpu:gloo,cuda:nccl"
    if not dist.is_initialized():
        with collective("joining the process group"):
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds()))
        atexit.register(_leave)
        if threading.current_thread() is threading.main_thread():
            _STATE["pid"] = os.getpid()
            signal.signal(signal.SIGTERM, _terminated)
    return device


def _leave() -> None:
    with contextlib.suppress(Exception):  # at exit, after a failure: the group may already be gone
        dist.destroy_process_group()


# "quiet": this rank's command is over or already failing, so its one line is on its way and a SIGTERM
# must not interrupt the exit; "stopped": a SIGTERM came while raising was unsafe (see _terminated).
_STATE: dict[str, Any] = {"quiet": False, "stopped": False, "pid": os.getpid()}
STOPPED = "stopped by SIGTERM (torchrun stops every rank when one fails, or the job was cancelled)"


def failing(error: SpurbenchError) -> SpurbenchError:
    _STATE["quiet"] = True
    return error


def _terminated(signum: int, frame: Any) -> None:
    # torchrun sends SIGTERM to the surviving ranks when one fails. Raising unwinds through
    # ``atomic_path`` blocks (no half-written file stays) to the CLI's one line. Not while the rank is
    # already failing (a second traceback), nor inside a finaliser (``__del__`` would swallow it, print
    # it and go on): then the next collective raises it.
    if os.getpid() != _STATE["pid"]:
        # a DataLoader worker forked after the handler was installed: torchrun signals the whole
        # process group, and the rank itself shuts its workers down as it unwinds (a worker that
        # died here would make the rank's loader raise a second, multi-line error)
        return
    _STATE["stopped"] = True
    in_finaliser = False
    while frame is not None and not in_finaliser:
        in_finaliser, frame = frame.f_code.co_name == "__del__", frame.f_back
    if not (_STATE["quiet"] or in_finaliser):
        raise failing(SpurbenchError(f"{who()}: {STOPPED}"))


@contextlib.contextmanager
def joined(device: str = "cpu") -> Iterator[str]:
    """:func:`setup` for one command: the block gets this rank's device; once it ends (done or failed),
    a SIGTERM no longer interrupts the process, which is only printing its line and exiting."""
    _STATE.update(quiet=False, stopped=False)
    try:
        yield setup(device)
    finally:
        _STATE["quiet"] = True


def _reason(exc: BaseException) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"no answer from every rank within {timeout_seconds():g} s (raise {TIMEOUT_ENV} if a rank is just slow)"
    text = re.sub(r"^\[[^\]]*\]\s*", "", text).split(". ")[0]  # without gloo's source location and advice
    return f"another rank stopped ({text[:160]})"


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Translate a failed or timed-out collective into one line naming this rank and the step."""
    if _STATE["stopped"] and not _STATE["quiet"]:
        raise failing(SpurbenchError(f"{who()}: {STOPPED}"))
    try:
        yield
    except SpurbenchError as exc:
        raise failing(exc) from None
    except RuntimeError as exc:  # DistError, DistBackendError, DistStoreError and gloo's own are RuntimeErrors
        raise failing(SpurbenchError(f"{who()}: {what} failed: {_reason(exc)}")) from None


__all__ = [
    "STOPPED",
    "TIMEOUT_ENV",
    "active",
    "collective",
    "failing",
    "is_main",
    "joined",
    "rank",
    "setup",
    "timeout_seconds",
    "who",
    "world_size",
]
