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

from spurbench.distributed.collectives import all_sum, check_count, check_same, from_main, gather_all, main_first, share_bounds
from spurbench.distributed.group import TIMEOUT_ENV, active, is_main, joined, rank, setup, timeout_seconds, world_size

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
