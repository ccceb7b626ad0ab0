"""P12: the cost of one label save at 30 and at 10,000 labels already stored (issue 23, case 7).

A synthetic discovery of 1,000 classes x 10 components; the labels that are already there are written
as a format-1 ``labels.json`` (as spurbench wrote them before the ledger; the current code moves them
into its ledger on the first save, which is left out of the timing). Measured: ``record_label`` (the
store: lock, append or rewrite, sync) and ``POST /api/labels`` through the page's app (the store plus
the class state it answers with), median of 30 saves each. Prints the numbers and the ratio
10,000 / 30, which stays near 1 when a save is O(1) in the number of records.

    python perf/p12_label_save.py                       # this tree
    PYTHONPATH=/path/to/older/tree python perf/p12_label_save.py   # the same script on older code
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

CLASSES, COMPONENTS, SAVES = 1000, 10, 30
LABELS = ("spurious", "not_spurious", "inconsistent")


def _component(rank: int) -> dict:
    quantiles = dict.fromkeys(("q05", "q25", "q50", "q75", "q95"), 0.0)
    return {"rank": rank, "eigenvalue": 1.0, "variance_share": 0.1, "alpha_mean": 0.0, "alpha_quantiles": quantiles, "top_images": []}


def make_folder(root: Path, stored: int) -> Path:
    """A discovery folder of CLASSES x COMPONENTS components with ``stored`` labels by bob."""
    folder = root / f"discovery-{stored}"
    folder.mkdir()
    model = {
        "name": "perf:net",
        "family": "perf",
        "weights_revision": "r0",
        "num_params": 1,
        "label_space": "imagenet-1k",
        "num_classes": CLASSES,
    }
    classes = {
        str(k): {
            "class_index": k,
            "class_name": f"class{k}",
            "num_images": 10,
            "logit_mean": 0.0,
            "components": [_component(r) for r in range(COMPONENTS)],
        }
        for k in range(CLASSES)
    }
    training = {"benchmark": "perf", "name": "perf", "revision": None, "checksum": None, "source": None}
    index = {
        "format": 1,
        "spurbench_version": "0",
        "basis": "npca",
        "model": model,
        "training": training,
        "components_per_class": COMPONENTS,
        "top_images": 0,
        "npfv_steps": 0,
        "classes": classes,
    }
    (folder / "discovery.json").write_text(json.dumps(index))
    records = [
        {
            "class_index": (i // COMPONENTS) % CLASSES,
            "rank": i % COMPONENTS,
            "label": LABELS[i % 3],
            "labeler": "bob",
            "at": "2024-01-01T00:00:00Z",
        }
        for i in range(stored)
    ]
    labels = {"format": 1, "model": "perf:net", "weights_revision": "r0", "basis": "npca", "records": records}
    (folder / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    (folder / "images").mkdir()
    return folder


def median_ms(run) -> float:
    times = []
    for i in range(SAVES):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(folder: Path) -> tuple[float, float]:
    from fastapi.testclient import TestClient

    from spurbench.discovery.index import read_index
    from spurbench.discovery.labels import record_label
    from spurbench.labelpage.app import create_app

    index = read_index(folder)
    record_label(folder, 0, 0, "spurious", "alice", index=index)  # a first save (the ledger: the migration)
    store = median_ms(lambda i: record_label(folder, 1 + i, i % COMPONENTS, LABELS[i % 3], "alice", index=index))
    with TestClient(create_app(folder, "carol"), base_url="http://127.0.0.1:8765") as client:
        client.post("/api/labels", json={"class_index": 0, "rank": 0, "label": "spurious"}).raise_for_status()
        page = median_ms(
            lambda i: client.post(
                "/api/labels", json={"class_index": 1 + i, "rank": i % COMPONENTS, "label": LABELS[i % 3]}
            ).raise_for_status()
        )
    return store, page


def main() -> None:
    import spurbench.discovery.labels

    print(f"spurbench.discovery.labels from {spurbench.discovery.labels.__file__}")
    with tempfile.TemporaryDirectory(prefix="spurbench-p12-") as tmp:
        results = {n: measure(make_folder(Path(tmp), n)) for n in (30, 10_000)}
    for what, i in (("store save (record_label)", 0), ("page save (POST /api/labels)", 1)):
        small, large = results[30][i], results[10_000][i]
        print(f"{what}: {small:.1f} ms at 30 labels, {large:.1f} ms at 10,000 labels, ratio {large / small:.1f}")


if __name__ == "__main__":
    main()
