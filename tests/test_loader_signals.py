"""Loader workers leave the scheduler's signals to the main process (issue: sweeps on a real SLURM
cluster, faults 1 and 2): SLURM signals every process of a job, SIGTERM on preemption or requeue and
USR2 before the time limit. A real DataLoader with forked workers; the signal goes to a worker mid-run."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from spurbench.dataloading import loader_worker_started, quiet_hangups_from_main


class Slow(Dataset):
    """Twelve items, each taking a moment: the run is still going when the signal arrives."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> torch.Tensor:
        time.sleep(0.05)
        return torch.tensor([index])


def _read_all_signalling_the_worker(worker_init, signum: int) -> list[int]:
    loader = DataLoader(Slow(), batch_size=2, num_workers=1, multiprocessing_context="fork", worker_init_fn=worker_init)
    batches = iter(loader)
    seen = [int(i) for i in next(batches)]
    os.kill(batches._workers[0].pid, signum)  # the worker of this run (torch keeps its processes there)
    time.sleep(0.3)  # the signal lands while the worker still has batches to make
    seen += [int(i) for batch in batches for i in batch]
    return seen


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR2], ids=["SIGTERM", "SIGUSR2"])
def test_a_signalled_worker_carries_on_and_the_run_ends_whole(signum):
    assert _read_all_signalling_the_worker(loader_worker_started, signum) == list(range(12))


@pytest.mark.parametrize(
    "signum",
    [pytest.param(signal.SIGTERM, id="SIGTERM", marks=pytest.mark.slow), pytest.param(signal.SIGUSR2, id="SIGUSR2")],
)  # (a worker killed by SIGTERM is noticed by torch's 5 s status check)
def test_without_it_the_signal_kills_the_worker_and_the_run(signum):
    """The same run with only the hang-up hook: what a job under SLURM did before (the check above can fail)."""
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly|killed by signal"):
        _read_all_signalling_the_worker(quiet_hangups_from_main, signum)
