"""The machine a run uses: devices, data-loader workers, memory behaviour, and one-line notices."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys

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


def default_workers() -> int:
    # Decoding overlaps with the forward pass; one worker per spare core is enough on small machines.
    return max(0, min(4, (os.cpu_count() or 1) - 1))


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
