"""Test harness, not a product hook: one torchrun worker that runs spurbench CLI commands in one
process group, optionally misbehaving on rank 1 (tests/test_distributed.py).

    torchrun --nproc-per-node 2 tests/support/distributed_worker.py [--rank1-replace OLD NEW] [--rank1-exit-at-open N] CMD ... [:: CMD ...]

``--rank1-replace``: rank 1 gets NEW for the argument OLD (other inputs than rank 0).
``--rank1-exit-at-open N``: rank 1 dies (``os._exit(1)``, no cleanup) when it opens its N-th feature
stream (fit_source opens two per class: N=3 is right after the first class).
Every command runs through ``spurbench.cli.main``; the first that fails ends the worker with its status.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> None:
    rank = int(os.environ.get("RANK", "0"))
    replace: dict[str, str] = {}
    exit_at = 0
    while argv and argv[0].startswith("--rank1-"):
        if argv[0] == "--rank1-replace":
            replace[argv[1]] = argv[2]
            argv = argv[3:]
        elif argv[0] == "--rank1-exit-at-open":
            exit_at, argv = int(argv[1]), argv[2:]
        else:
            raise SystemExit(f"distributed_worker: unknown option {argv[0]}")
    commands: list[list[str]] = [[]]
    for arg in argv:  # (not "--": torchrun's own argument parser swallows the first one)
        if arg == "::":
            commands.append([])
        else:
            commands[-1].append(arg)
    if rank == 1 and exit_at:
        from spurbench.features import FeatureStream

        real_open = FeatureStream.open.__func__
        opened = []

        def dying_open(cls, *args, **kwargs):
            opened.append(1)
            if len(opened) == exit_at:
                os._exit(1)
            return real_open(cls, *args, **kwargs)

        FeatureStream.open = classmethod(dying_open)
    from spurbench.cli import main as cli_main

    for command in commands:
        cli_main([replace.get(a, a) for a in command] if rank == 1 else command)


if __name__ == "__main__":
    main(sys.argv[1:])
