"""P14: what the CI's test command costs, before and after a change, and what pytest-xdist buys here.

    python perf/p14_ci_time.py --before REV [--after REV|worktree] [--repeat N] -- PYTEST_ARGS...
    python perf/p14_ci_time.py --xdist [--after REV|worktree] [--repeat N] -- PYTEST_ARGS...

Each side runs the selected tests (``python -m pytest -q PYTEST_ARGS``; ``--xdist``: serially against
``-n 2 --dist loadscope --no-loadscope-reorder``, as .ci/run) in a fresh interpreter, in a tree exported with ``git archive``
(``worktree``: the tracked and untracked files of this checkout), so edits in flight elsewhere do not
mix in. The sides alternate, ``--repeat`` times, and each line gives wall seconds, CPU seconds (pytest
and every process it waited for) and the load average before and after: on a shared machine the wall
times of a loaded run mean little, and torch's threads spin while they wait for a core, so its CPU
seconds grow too. Compare lines run under a similar load. The last lines give the ratios of the medians.

Two things keep the measurement close to ``.ci/run``:
- Bytecode. A pip-installed venv (``.ci/run``) holds compiled .pyc files; a venv built without them,
  under PYTHONDONTWRITEBYTECODE, compiles torch again in every interpreter (seconds of CPU per process
  start). Every side here reads and writes bytecode under one PYTHONPYCACHEPREFIX folder, warmed first.
- Plugin entry points. The installed metadata names the modules of the checkout it was installed from;
  each exported tree carries a ``spurbench-0.1.0.dist-info`` of its own pyproject's entry points,
  found first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import tomllib  # Python 3.11+, as the project's venv

ROOT = Path(__file__).resolve().parents[1]


def export_tree(rev: str, into: Path) -> Path:
    """The files of ``rev`` (``worktree``: this checkout's tracked and untracked, not ignored) in ``into``."""
    into.mkdir(parents=True)
    if rev == "worktree":
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        for name in filter(None, listed.decode().split("\0")):
            source = ROOT / name
            if source.is_file():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, into / name)
    else:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(into, filter="data")
    write_entry_points(into)
    return into


def write_entry_points(tree: Path) -> None:
    """A dist-info holding the tree's own entry points, so plugin look-ups import the tree's modules."""
    project = tomllib.loads((tree / "pyproject.toml").read_text())["project"]
    lines = ["[console_scripts]", *(f"{name} = {target}" for name, target in project.get("scripts", {}).items()), ""]
    for group, entries in project.get("entry-points", {}).items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in entries.items()), ""]
    info = tree / "spurbench-0.1.0.dist-info"
    info.mkdir()
    (info / "entry_points.txt").write_text("\n".join(lines))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spurbench\nVersion: 0.1.0\n")


def environment(tree: Path, pycache: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": str(pycache), "HF_HUB_OFFLINE": "1"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(label: str, tree: Path, pytest_args: list[str], pycache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one pytest run in ``tree``; prints its line."""
    load_before, cpu_before, start = os.getloadavg()[0], children_cpu(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
        cwd=tree,
        env=environment(tree, pycache),
        capture_output=True,
        text=True,
    )
    wall, cpu = time.monotonic() - start, children_cpu() - cpu_before
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    print(f"{label:>8}: {wall:7.1f} s wall {cpu:7.1f} s CPU  load {load_before:.1f} -> {os.getloadavg()[0]:.1f}  ({summary})", flush=True)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="revision to compare against (git rev)")
    parser.add_argument("--after", default="worktree", help="revision measured (default: this checkout as it is)")
    parser.add_argument(
        "--xdist", action="store_true", help="compare serial against -n 2 --dist loadscope --no-loadscope-reorder on the --after tree"
    )
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("pytest_args", nargs="+", help="after --: the tests (paths, -k, -m) to run")
    args = parser.parse_args()
    if bool(args.before) == args.xdist:
        parser.error("give either --before REV or --xdist")
    with tempfile.TemporaryDirectory(prefix="spurbench-p14-") as folder:
        work, pycache = Path(folder), Path(folder) / "pycache"
        after = export_tree(args.after, work / "after")
        sides = {"before": (export_tree(args.before, work / "before"), args.pytest_args)} if args.before else {}
        sides["serial" if args.xdist else "after"] = (after, args.pytest_args)
        if args.xdist:
            sides["-n 2"] = (after, ["-n", "2", "--dist", "loadscope", "--no-loadscope-reorder", *args.pytest_args])
        subprocess.run([sys.executable, "-c", "import torch, torchvision, timm, scipy.stats"], env=environment(after, pycache), check=True)
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in sides}
        for round_ in range(args.repeat):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))  # alternate: load drifts
            for label in order:
                times[label].append(timed(label, *sides[label], pycache))
    first, second = list(times)
    for index, what in ((0, "wall"), (1, "CPU")):
        a, b = (statistics.median(run[index] for run in times[label]) for label in (first, second))
        print(f"median {what}: {first} {a:.1f} s, {second} {b:.1f} s: ratio {second}/{first} = {b / a:.2f}")


if __name__ == "__main__":
    main()
