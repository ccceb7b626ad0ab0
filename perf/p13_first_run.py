"""P13: the first `spurbench run` on a fresh cache, with the shipped planted weights against training them
on first use (what every first run did before the weights shipped).

Each side is a fresh interpreter with its own empty SPURBENCH_CACHE and HF_HOME (what a new user's first
run meets). The "trained" side runs the same command with the shipped weights switched off in-process
(``weights.shipped_file`` answers None), so both models train first, as before. Prints both wall
times, the ratio, and the load average before and after (the machine may be shared: a busy machine
slows both sides, training most).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAINED = (
    "import sys; from spurbench.benchmarks.planted import weights; "
    "weights.shipped_file = lambda *a, **k: None; "
    "from spurbench.cli import main; main(sys.argv[1:])"
)


def first_run(shipped: bool, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="spurbench-p13-") as folder:
        env = {**os.environ, "SPURBENCH_CACHE": str(Path(folder) / "cache"), "HF_HOME": str(Path(folder) / "hf"), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-m", "spurbench"] if shipped else [sys.executable, "-c", TRAINED]
        start = time.perf_counter()
        subprocess.run([*command, "run", "-o", str(Path(folder) / "results"), *extra], check=True, capture_output=True, env=env, cwd=folder)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="pass --limit N to run (a quicker, smaller measurement)")
    args = parser.parse_args()
    extra = [] if args.limit is None else ["--limit", str(args.limit)]
    load_before = os.getloadavg()
    shipped = first_run(True, extra)
    trained = first_run(False, extra)
    load_after = os.getloadavg()
    print(f"first run, weights trained on first use: {trained:.1f} s")
    print(f"first run, shipped weights:              {shipped:.1f} s  ratio {trained / shipped:.1f}x faster")
    print(
        f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
