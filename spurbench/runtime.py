"""The machine a run uses: devices, data-loader workers, memory behaviour, and one-line notices."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import sys
import threading
import time
import warnings

import torch

from spurbench.errors import SpurbenchError


def check_device(device: str) -> str:
    """``device`` if this machine has it, else a one-line SpurbenchError (before any work is done)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise SpurbenchError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SpurbenchError(f"device {device!r}: no CUDA device is available on this machine")
        if parsed.index is not None and parsed.index >= count:
            raise SpurbenchError(f"device {device!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise SpurbenchError(f"device {device!r}: MPS is not available on this machine")
    elif parsed.type != "cpu":
        raise SpurbenchError(f"unsupported device {device!r}; use cpu, cuda, cuda:N or mps")
    return device


def note(message: str) -> None:
    """A one-line notice on stderr (cache repairs): the user is told, the run goes on."""
    sys.stderr.write(f"note: {message}\n")


def _affinity() -> list[int] | None:
    """The CPUs this process may run on, sorted; None where the platform has no affinity (not Linux)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity (taskset, SLURM's task/affinity, a sweep's local
    job packed with others), and inside a SLURM job no more than the job was given: with SLURM's
    task/none a one-CPU job's affinity is the whole node."""
    affinity = _affinity()
    cores = len(affinity) if affinity is not None else os.cpu_count() or 1
    if os.environ.get("SLURM_JOB_ID"):
        granted = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_CPUS_ON_NODE") or ""
        if granted.isdigit() and int(granted) > 0:
            cores = min(cores, int(granted))
    return cores


def confine_torch_threads() -> int:
    """torch's intra-op threads, cut to the cores this process may use. torch sizes its pool from the
    CPUs it sees when it loads (under SLURM's task/none, the whole node): processes sharing a machine
    would each run that many threads, oversubscribing it."""
    cores = available_cores()
    if torch.get_num_threads() > cores:
        torch.set_num_threads(cores)
    return torch.get_num_threads()


def core_groups(count: int) -> list[list[int]]:
    """This process's cores in ``count`` groups, one per job packed onto the machine: contiguous and
    disjoint while there are enough cores, else each job one core, shared in turn."""
    cores = _affinity()
    if cores is None:  # no affinity to hand out
        return [[] for _ in range(count)]
    if count >= len(cores):
        return [[cores[i % len(cores)]] for i in range(count)]
    size, extra = divmod(len(cores), count)
    groups, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        groups.append(cores[start:end])
        start = end
    return groups


def default_workers(processes_per_node: int | None = None) -> int:
    # Decoding overlaps with the forward pass: every core but the one that drives the model decodes
    # (a GPU needs several, see perf/p11_shared_decode.py); 0 = in the main process, on one core.
    # Processes sharing the node (torchrun's ranks, a sweep's packed jobs) share its cores.
    sharing = processes_per_node or int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(0, available_cores() // max(1, sharing) - 1)


def check_workers(num_workers: int | None) -> int | None:
    """``num_workers`` if it is None (the default) or a count >= 0, else a one-line SpurbenchError."""
    if num_workers is not None and (isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0):
        raise SpurbenchError(f"--num-workers must be 0 or more data-loader workers, not {num_workers!r}")
    return num_workers


PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: str) -> str:
    """``precision`` if it names one of PRECISIONS and this device's autocast runs it, else a one-line
    SpurbenchError. torch switches autocast off with only a warning for a dtype a device does not
    support (which would silently compute in fp32), so that warning is turned into the error here."""
    if precision not in PRECISIONS:
        raise SpurbenchError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if PRECISIONS[precision] is None:
        return precision
    kind = torch.device(device).type
    if not torch.amp.is_autocast_available(kind):
        raise SpurbenchError(f"--precision {precision}: torch has no autocast for device {device!r}; use fp32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast(device_type=kind, dtype=PRECISIONS[precision]):
            pass
    if caught:
        raise SpurbenchError(f"--precision {precision} on {device}: {' '.join(str(caught[0].message).split())}")
    return precision


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """The backbone's forward context: torch autocast to bf16 / fp16 (checked by check_precision), or nothing for fp32."""
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def worker_context() -> str | None:
    # Image loaders are closures, which only fork can hand to workers without pickling.
    return "fork" if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods() else None


_HEAP_BOUNDED = False


def bound_heap_growth() -> None:
    """Keep resident memory independent of the image count on glibc (Linux).

    Why: glibc raises its mmap threshold to the size of each large buffer freed, so later feature,
    image-batch and shard buffers (MiBs each) come from the heap, where fragmentation kept them
    resident: a fit over 4x the images grew peak memory ~4x (perf/p4_streaming_memory.py).
    A fixed threshold maps such buffers and unmaps them when freed. Process-wide, set once, and
    never over a user's own MALLOC_MMAP_THRESHOLD_.
    """
    global _HEAP_BOUNDED
    if _HEAP_BOUNDED or not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    _HEAP_BOUNDED = True
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD = -3 in glibc's malloc.h
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        pass


PROGRESS_INTERVAL_ENV = "SPURBENCH_PROGRESS_INTERVAL"
DEFAULT_PROGRESS_INTERVAL = 30.0


def progress_interval() -> float:
    """Seconds between progress lines without a terminal: ``SPURBENCH_PROGRESS_INTERVAL`` (default 30;
    0: a line at the start, at every step and at the end)."""
    text = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_PROGRESS_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise SpurbenchError(f"{PROGRESS_INTERVAL_ENV}={text!r}: expected seconds between progress lines, 0 or more")
    return value


class StageProgress:
    """Progress of one long stage (training, features, NPFV) on stderr, with or without a terminal.

    On a terminal: a rich bar (gone when the stage ends). Otherwise (a CI log, nohup, a SLURM file):
    plain lines, so that a log shows the run is alive. The first comes once the stage has run for
    the interval (so a short stage, or one that fails at once, adds no line before its error), then
    one every interval, from a timer thread (also while one step takes long), and one when the stage
    ends; each names the stage, the count done and the rate. Use as a context manager; ``advance``
    counts work done, ``detail`` (e.g. a loss) is appended to the lines."""

    def __init__(self, label: str, total: int | None, unit: str = "images", *, enabled: bool = True, bar: bool = True):
        self.label, self.total, self.unit = label, total, unit
        self.done, self.detail = 0, ""
        self.terminal = enabled and sys.stderr.isatty()
        self.lines = enabled and not self.terminal
        self.interval = progress_interval() if self.lines else 0.0
        self._bar = None if not (self.terminal and bar) else self._rich_bar()
        self._printed = False
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._started = 0.0

    def _rich_bar(self):
        # lazy: rich's progress machinery only where a terminal shows it
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        return Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(self.unit),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )

    def __enter__(self) -> StageProgress:
        self._started = time.perf_counter()
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        if self.lines and self.interval == 0:
            self._line("started")
        elif self.lines:
            self._timer = threading.Thread(target=self._tick, name="spurbench-progress", daemon=True)
            self._timer.start()
        return self

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        self.done += n
        if detail is not None:
            self.detail = detail
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        if self.lines and self.interval == 0:
            self._line()

    def __exit__(self, kind, value, traceback) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        if self._bar is not None:
            self._bar.stop()
        if self._printed and kind is None:
            self._line("done")

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self._line()

    def _line(self, state: str | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        parts = [f"{count} {self.unit}"]
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:.0f} {self.unit}/s" if rate >= 100 else f"{rate:.3g} {self.unit}/s")
            if self.total is not None and state is None and self.done < self.total:
                parts.append(f"about {(self.total - self.done) / rate:.0f} s left")
        parts.append(f"{elapsed:.0f} s")
        if self.detail:
            parts.append(self.detail)
        sys.stderr.write(f"{self.label}: {state + ', ' if state else ''}{', '.join(parts)}\n")
        sys.stderr.flush()
        self._printed = True
