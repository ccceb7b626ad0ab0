"""Data parallelism under torchrun: one contract for ``spufix fit`` and ``discover``.

``torchrun --nproc-per-node N -m spurbench ...`` starts N processes with RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT set; :func:`setup` joins their process group (gloo for CPU tensors, plus
NCCL on ``cuda:LOCAL_RANK`` for a CUDA run). Each rank then streams its :func:`share_bounds` of every
image list, the statistics are summed with :func:`all_sum` (float64, CPU), rank 0 finalises them and
writes. Without torchrun's environment (WORLD_SIZE unset or 1) every helper is the identity, so a
single process behaves exactly as it always did.

A collective that fails (a rank died, torchrun tore the group down) or waits longer than
``SPURBENCH_DISTRIBUTED_TIMEOUT`` seconds becomes a one-line :class:`~spurbench.errors.SpurbenchError`
on every surviving rank, as does the SIGTERM torchrun sends them; ranks given different inputs fail in
:func:`check_same` before any work.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from spurbench.errors import DataError, SpurbenchError
from spurbench.files import stable_hash

T = TypeVar("T")

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


def _who() -> str:
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
        with _collective("joining the process group"):
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


def _failing(error: SpurbenchError) -> SpurbenchError:
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
        raise _failing(SpurbenchError(f"{_who()}: {STOPPED}"))


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
def _collective(what: str) -> Iterator[None]:
    """Translate a failed or timed-out collective into one line naming this rank and the step."""
    if _STATE["stopped"] and not _STATE["quiet"]:
        raise _failing(SpurbenchError(f"{_who()}: {STOPPED}"))
    try:
        yield
    except SpurbenchError as exc:
        raise _failing(exc) from None
    except RuntimeError as exc:  # DistError, DistBackendError, DistStoreError and gloo's own are RuntimeErrors
        raise _failing(SpurbenchError(f"{_who()}: {what} failed: {_reason(exc)}")) from None


def share_bounds(count: int, unit: int = 1, of_rank: int | None = None, world: int | None = None) -> tuple[int, int]:
    """This rank's contiguous part [start, end) of ``count`` items, cut only at multiples of ``unit``.

    Why contiguous and aligned to the batch size: every batch a rank forms is then exactly a batch the
    single process forms, so the features are bit-identical (CPU kernels can round differently when a
    batch holds other images), and gathering the parts in rank order gives the single-process order.
    """
    r = rank() if of_rank is None else of_rank
    w = world_size() if world is None else world
    units = -(-count // max(1, unit))
    return min(count, unit * (units * r // w)), min(count, unit * (units * (r + 1) // w))


def all_sum(tensor: torch.Tensor, what: str = "summing statistics") -> torch.Tensor:
    """``tensor`` summed over the ranks, as a new float64 CPU tensor (``tensor`` itself on one process)."""
    if not active():
        return tensor
    total = tensor.detach().to(device="cpu", dtype=torch.float64, copy=True).contiguous()
    with _collective(what):
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def gather_all(value: T, what: str = "gathering results") -> list[T]:
    """Every rank's ``value`` (picklable: tensors of any length, lists), in rank order, on every rank."""
    if not active():
        return [value]
    out: list[Any] = [None] * world_size()
    with _collective(what):
        dist.all_gather_object(out, value)
    return out


def _broadcast(value: Any, what: str) -> Any:
    box = [value]
    with _collective(what):
        dist.broadcast_object_list(box, src=0)
    return box[0]


def _portable(exc: SpurbenchError) -> tuple[type[SpurbenchError], str]:
    # The class (if it is one of spurbench.errors', which rebuild from a message) and the message:
    # a plugin's own error class might not unpickle on the other ranks.
    return (type(exc) if type(exc).__module__ == SpurbenchError.__module__ else SpurbenchError), str(exc)


def from_main(compute: Callable[[], T], what: str = "receiving rank 0's result") -> T:
    """``compute()`` run on rank 0 only and handed to every rank. A SpurbenchError it raises is raised
    on every rank (the same line), so a bad input on rank 0 does not leave the others waiting."""
    if not active():
        return compute()
    if is_main():
        try:
            value = compute()
        except SpurbenchError as exc:
            _broadcast(("error", _portable(exc)), what)
            raise _failing(exc) from None
        _broadcast(("ok", value), what)
        return value
    status, value = _broadcast(None, what)
    if status == "error":
        raise _failing(value[0](value[1]))
    return value


@contextlib.contextmanager
def main_first(what: str = "waiting for rank 0") -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks: rank 0 fills the caches (a download,
    a generated model's training) that the others then read, instead of all of them doing it at once."""
    if not active():
        yield
        return
    if is_main():
        try:
            yield
        except SpurbenchError as exc:
            _broadcast(("error", _portable(exc)), what)
            raise _failing(exc) from None
        _broadcast(("ok", None), what)
        return
    status, error = _broadcast(None, what)
    if status == "error":
        raise _failing(error[0](error[1]))
    yield


def check_same(payload: Any, what: str) -> None:
    """Fail on every rank, in one line, unless every rank was given the same ``payload`` (compared by a
    hash): ranks started with other arguments or data would otherwise share images wrongly."""
    if not active():
        return
    digests = gather_all(stable_hash(payload, length=32), f"comparing {what}")
    other = next((r for r, digest in enumerate(digests) if digest != digests[0]), None)
    if other is not None:
        raise _failing(
            DataError(
                f"rank {other} of {len(digests)} was given other {what} than rank 0 (digest {digests[other][:12]} vs {digests[0][:12]}); "
                "start every rank with the same arguments and data"
            )
        )


def check_count(count: int, expected: int, what: str) -> None:
    """The images the ranks' parts held together must be the whole list: no image lost or counted twice."""
    if count != expected:
        raise _failing(
            DataError(f"{_who()}: the ranks' parts of {what} hold {count} images, the data {expected}; the ranks saw different data")
        )


__all__ = [
    "TIMEOUT_ENV",
    "active",
    "all_sum",
    "check_count",
    "check_same",
    "from_main",
    "gather_all",
    "is_main",
    "joined",
    "main_first",
    "rank",
    "setup",
    "share_bounds",
    "timeout_seconds",
    "world_size",
]
