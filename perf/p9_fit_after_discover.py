"""P9: `spufix fit` after `discover` on the same model and training images runs no backbone forward
(goal: 0 images forwarded), because both read the same feature-cache entries.

Runs the real commands in this process (``spurbench.cli.main``) on the planted benchmark's CNN,
counting every image that goes through the backbone (``PlantedAdapter.features``):

    spurbench discover   -m planted:cnn --train-data planted --out D --npfv-steps 0
    spurbench spufix fit -m planted:cnn --train-data planted --components C.json

C.json names component 1 of every class (which components does not matter for the count). The first
run trains planted:cnn into the cache (about a minute on 2 cores); set SPURBENCH_CACHE to reuse it.

    python perf/p9_fit_after_discover.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from spurbench.benchmarks.planted.models import PlantedAdapter
from spurbench.cli import main as spurbench

forwarded = {"images": 0}
real_features = PlantedAdapter.features


def counting_features(self: PlantedAdapter, x):  # type: ignore[no-untyped-def]
    forwarded["images"] += x.shape[0]
    return real_features(self, x)


def run(*args: str) -> None:
    try:
        spurbench(list(args))
    except SystemExit as exc:
        if exc.code:
            raise


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="spurbench-p9-"))
    PlantedAdapter.load("cnn")  # train (or load) it before counting: training forwards are not the fit's
    PlantedAdapter.features = counting_features  # type: ignore[method-assign]
    run("discover", "-m", "planted:cnn", "--train-data", "planted", "--out", str(work / "d"), "--npfv-steps", "0", "-q")
    in_discover = forwarded["images"]
    index = json.loads((work / "d" / "discovery.json").read_text())
    (work / "c.json").write_text(json.dumps({k: [1] for k in index["classes"]}))
    forwarded["images"] = 0
    run("spufix", "fit", "-m", "planted:cnn", "--train-data", "planted", "--components", str(work / "c.json"), "-o", str(work / "a"), "-q")
    print(
        f"P9: discover forwarded {in_discover} images (top-image GradCAMs included); spufix fit afterwards forwarded {forwarded['images']}"
    )
    print(f"P9 count (backbone forwards in spufix fit after discover): {forwarded['images']}  (goal: 0)")


if __name__ == "__main__":
    main()
