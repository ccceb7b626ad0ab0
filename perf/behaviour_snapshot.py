"""Snapshot the numbers of four planted runs, or compare two snapshots (issue 25's behaviour-equality check).

    python perf/behaviour_snapshot.py take DIR      # run, views, debug sweep and discover on planted into DIR
    python perf/behaviour_snapshot.py compare A B   # every metric and per-image probability identical?

Run `take` with the code before a refactor and again after it; `compare` prints each differing
number and exits 1 if there is one. Provenance (times, versions, hosts, paths) is not compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

COMMANDS = {
    "run": ["run", "-o", "{out}/run"],
    "views": ["run", "-b", "planted-salient", "-o", "{out}/views"],
    "sweep": ["sweep", "--executor", "debug", "-m", "planted:cnn", "-o", "{out}/sweep"],
    "discover": ["discover", "--model", "planted:cnn", "--train-data", "planted", "--classes", "0,1", "--out", "{out}/discover"],
}
IGNORED_KEYS = {
    "provenance",
    "created",
    "started",
    "finished",
    "duration_s",
    "seconds",
    "host",
    "hostname",
    "log",
    "path",
    "paths",
    "version",
    "spurbench_version",
    "torch_version",
    "timm_version",
    "schema_version",
    "config_hash",
    "python",
    "platform",
    "cache",
}


def take(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=False)
    env = dict(os.environ, HF_HUB_OFFLINE="1", SPURBENCH_CACHE=str(out / "cache"))
    for name, args in COMMANDS.items():
        argv = [sys.executable, "-m", "spurbench", *(a.format(out=out) for a in args)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        (out / f"{name}.log").write_text(done.stdout + done.stderr)
        print(f"{name}: exit {done.returncode}")


def numbers(value: Any, where: str = "") -> dict[str, Any]:
    """Every leaf number (and string) of a JSON document, keyed by its path, provenance left out."""
    found: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in IGNORED_KEYS:
                found.update(numbers(item, f"{where}/{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.update(numbers(item, f"{where}[{index}]"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found[where] = value
    return found


def documents(root: Path) -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if rel.parts[0] == "cache" or ".sweep" in rel.parts:
            continue
        docs[str(rel)] = numbers(json.loads(path.read_text()))
    return docs


def compare(before: Path, after: Path) -> int:
    a, b = documents(before), documents(after)
    differences = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {'after' if name in b else 'before'}")
            differences += 1
            continue
        for key in sorted(set(a[name]) & set(b[name])):
            if a[name][key] != b[name][key]:
                print(f"{name}{key}: {a[name][key]!r} != {b[name][key]!r}")
                differences += 1
    compared = sum(len(set(a[n]) & set(b.get(n, {}))) for n in a)
    print(f"{len(a)} documents, {compared} numbers compared, {differences} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["take"]:
        take(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["compare"]:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
