"""What the ranks do together: share a list (``share_bounds``), sum statistics (``all_sum``), gather
values (``gather_all``), hand rank 0's result to all (``from_main``, ``main_first``) and check that
every rank was given the same inputs (``check_same``, ``check_count``). On one process each is the
identity, so a single process behaves exactly as it always did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from spurbench.distributed.group import active, collective, failing, is_main, rank, who, world_size
from spurbench.errors import DataError, SpurbenchError
from spurbench.files import stable_hash

T = TypeVar("T")


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
    with collective(what):
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def gather_all(value: T, what: str = "gathering results") -> list[T]:
    """Every rank's ``value`` (picklable: tensors of any length, lists), in rank order, on every rank."""
    if not active():
        return [value]
    out: list[Any] = [None] * world_size()
    with collective(what):
        dist.all_gather_object(out, value)
    return out


def _broadcast(value: Any, what: str) -> Any:
    box = [value]
    with collective(what):
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
            raise failing(exc) from None
        _broadcast(("ok", value), what)
        return value
    status, value = _broadcast(None, what)
    if status == "error":
        raise failing(value[0](value[1]))
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
            raise failing(exc) from None
        _broadcast(("ok", None), what)
        return
    status, error = _broadcast(None, what)
    if status == "error":
        raise failing(error[0](error[1]))
    yield


def check_same(payload: Any, what: str) -> None:
    """Fail on every rank, in one line, unless every rank was given the same ``payload`` (compared by a
    hash): ranks started with other arguments or data would otherwise share images wrongly."""
    if not active():
        return
    digests = gather_all(stable_hash(payload, length=32), f"comparing {what}")
    other = next((r for r, digest in enumerate(digests) if digest != digests[0]), None)
    if other is not None:
        raise failing(
            DataError(
                f"rank {other} of {len(digests)} was given other {what} than rank 0 (digest {digests[other][:12]} vs {digests[0][:12]}); "
                "start every rank with the same arguments and data"
            )
        )


def check_count(count: int, expected: int, what: str) -> None:
    """The images the ranks' parts held together must be the whole list: no image lost or counted twice."""
    if count != expected:
        raise failing(
            DataError(f"{who()}: the ranks' parts of {what} hold {count} images, the data {expected}; the ranks saw different data")
        )


__all__ = ["all_sum", "check_count", "check_same", "from_main", "gather_all", "main_first", "share_bounds"]
