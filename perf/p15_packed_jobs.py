"""Two sweep jobs packed onto this machine at once against the same two one after another (issue 27).

Each job is a planted-salient run under 12 noise levels (real CPU work). The local executor runs them
with ``--max-parallel 1`` (one after another) and ``--max-parallel 2`` (both at once), each sweep
into a fresh folder and cache. Printed: wall time and the CPU seconds of the jobs (their processes'
rusage) for both, and the ratio of the wall times; on a machine with at least two free cores the
ideal ratio is 0.5, and the CPU seconds should not grow when the jobs share the machine. Run it on
an otherwise idle machine; to compare with the code before a change, run it from a checkout of that
commit (``git worktree add``) with the same interpreter.

    python perf/p15_packed_jobs.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIGMAS = "sigma=[" + ",".join(f"{0.1 * i:.1f}" for i in range(1, 13)) + "]"


def sweep(parallel: int, root: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of every process the sweep ran) for a local sweep of two jobs."""
    folder = root / f"parallel{parallel}"
    folder.mkdir()
    env = {**os.environ, "SPURBENCH_CACHE": str(folder / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # the jobs size their threads themselves
    command = [sys.executable, "-m", "spurbench", "sweep", "-m", "planted:cnn", "-m", "planted:resnet", "-b", "planted-salient"]
    command += ["-O", SIGMAS, "--bootstrap", "0", "--executor", "local", "--max-parallel", str(parallel), "-o", "out", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="spurbench-p15-") as tmp:
        one_wall, one_cpu = sweep(1, Path(tmp))
        two_wall, two_cpu = sweep(2, Path(tmp))
    print(f"cores available: {cores}")
    print(f"two jobs one after another (--max-parallel 1): {one_wall:.1f} s wall, {one_cpu:.1f} CPU-s")
    print(f"two jobs at once (--max-parallel 2):           {two_wall:.1f} s wall, {two_cpu:.1f} CPU-s")
    print(f"ratio, at once / one after another: wall {two_wall / one_wall:.2f}, CPU-seconds {two_cpu / one_cpu:.2f}")


if __name__ == "__main__":
    main()
