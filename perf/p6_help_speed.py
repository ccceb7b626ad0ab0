"""P6: `spurbench --help` stays fast: its wall time as a ratio to a bare `python -c "import typer"`
(and to the --help of a one-command typer app, which pays typer's own rich help rendering).

Both run as fresh processes (what a user's shell does); the best of N runs of each is compared, so
a busy machine inflates neither side alone. Prints both times and the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time


def best_of(command: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    typer_only = best_of([sys.executable, "-c", "import typer"], args.runs)
    # typer's own help rendering (rich) for a one-command app: what any typer CLI pays for --help
    bare_app = (
        "import typer; app = typer.Typer(add_completion=False); app.command()(lambda x: None); app(['--help'], standalone_mode=False)"
    )
    bare_help = best_of([sys.executable, "-c", bare_app], args.runs)
    helped = best_of([sys.executable, "-m", "spurbench", "--help"], args.runs)
    run_help = best_of([sys.executable, "-m", "spurbench", "run", "--help"], args.runs)
    print(f"python -c 'import typer': {typer_only * 1000:.0f} ms (best of {args.runs})")
    print(f"a one-command typer app --help: {bare_help * 1000:.0f} ms  ratio {bare_help / typer_only:.2f}")
    print(
        f"spurbench --help:         {helped * 1000:.0f} ms  ratio {helped / typer_only:.2f} (to the bare typer app's help: {helped / bare_help:.2f})"
    )
    print(
        f"spurbench run --help:     {run_help * 1000:.0f} ms  ratio {run_help / typer_only:.2f} (to the bare typer app's help: {run_help / bare_help:.2f})"
    )


if __name__ == "__main__":
    main()
