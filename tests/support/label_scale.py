"""Labelling at ImageNet scale, scripted: a synthetic discovery of 1,000 classes x 10 components with one
spurious component per class (its ground truth), and a labeller that knows it and drives the label page
in Chromium with the page's own keys. Used by tests/test_label_scale.py (key presses, nothing lost or
misplaced) and perf/p16_labelling_at_scale.py (latency per key at 10,000 records).

The labeller, on a class page opened most important first: it goes to the spurious component (nothing to
press when the cursor is on it already, else its position's digit), presses ``s``, then ``a`` ("the rest
are not spurious"), which saves and opens the next class.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from PIL import Image

MODEL = {"name": "synthetic:net", "family": "synthetic", "weights_revision": "r0", "num_params": 1, "label_space": "imagenet-1k"}
PHOTOS = 6  # distinct thumbnails, shared by every component (the page's cost, not the disk's)


def _photos(folder: Path) -> list[str]:
    from skimage import data as skdata

    sources = [skdata.coffee(), skdata.chelsea(), skdata.astronaut(), skdata.rocket(), skdata.camera(), skdata.cat()]
    names = []
    for i, pixels in enumerate(sources[:PHOTOS]):
        image = Image.fromarray(np.asarray(pixels)).convert("RGB")
        image.thumbnail((224, 224))
        name = f"images/photo{i}.png"
        image.save(folder / name)
        names.append(name)
    return names


def _shown(photos: list[str], count: int, start: int, sign: float) -> list[dict]:
    return [
        {"image_id": f"img{start + j}", "alpha": sign * (count - j), "file": photos[(start + j) % len(photos)], "cam_file": None}
        for j in range(count)
    ]


def synthetic_discovery(out: Path, classes: int = 1000, components: int = 10, seed: int = 0) -> dict[int, int]:
    """Write the discovery into ``out`` and return its ground truth: class -> the rank of its one spurious
    component. Variance shares are random (they do not follow rank, as on real models), and so is which
    component is spurious (not always the most important one)."""
    rng = random.Random(seed)
    (out / "images").mkdir(parents=True)
    photos = _photos(out)
    truth, records = {}, {}
    for k in range(classes):
        shares = [rng.random() for _ in range(components)]
        total = sum(shares)
        truth[k] = rng.randrange(components)
        records[str(k)] = {
            "class_index": k,
            "class_name": f"class{k}",
            "num_images": 1300,
            "logit_mean": 10.0,
            "components": [
                {
                    "rank": r,
                    "eigenvalue": shares[r],
                    "variance_share": shares[r] / total,
                    "alpha_mean": 0.0,
                    "alpha_quantiles": dict.fromkeys(("q05", "q25", "q50", "q75", "q95"), 0.0),
                    "top_images": _shown(photos, 8, k + r, 1.0),
                    "bottom_images": _shown(photos, 4, k + r + 8, -1.0),
                    "positive_share": 0.5,
                    "probability_effect": 0.01,
                }
                for r in range(components)
            ],
        }
    index = {
        "format": 1,
        "spurbench_version": "0",
        "basis": "npca",
        "model": {**MODEL, "num_classes": classes},
        "training": {"benchmark": "synthetic", "name": "synthetic-train", "revision": None, "checksum": None, "source": None},
        "components_per_class": components,
        "top_images": 8,
        "bottom_images": 4,
        "npfv_steps": 0,
        "classes": records,
    }
    (out / "discovery.json").write_text(json.dumps(index))
    return truth


def labelled_before(out: Path, truth: dict[int, int], classes: list[int], labeler: str, start: datetime | None = None) -> int:
    """The labels of ``classes`` as the labeller would have given them, 9 s a class, written straight into
    the ledger (``labels.jsonl``, one header line then a record per line): how many records."""
    start = start or datetime.now(timezone.utc) - timedelta(days=1)
    header = {"ledger": "labels", "format": 2, "model": MODEL["name"], "weights_revision": MODEL["weights_revision"], "basis": "npca"}
    components = len(json.loads((out / "discovery.json").read_text())["classes"]["0"]["components"])
    lines = [json.dumps(header, separators=(",", ":"))]
    for n, k in enumerate(classes):
        at = (start + timedelta(seconds=9 * n)).isoformat().replace("+00:00", "Z")
        for r in range(components):
            label = "spurious" if r == truth[k] else "not_spurious"
            lines.append(json.dumps({"class_index": k, "rank": r, "label": label, "labeler": labeler, "at": at}, separators=(",", ":")))
    (out / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return len(lines) - 1


# Per key, how long the page took, in ms: a key that changes the page it is on, to its next frame; "a", to the
# frame that shows the next class (its address changed, its components drawn). Kept across classes shown in
# place (the window stays); a page load starts a new list.
LATENCY_PROBE = """
if (!window.__probe) {
  window.__probe = [];
  document.addEventListener("keydown", (event) => {
    const start = performance.now(), from = location.pathname;
    const settle = () => {
      if (event.key === "a" && location.pathname === from) return requestAnimationFrame(settle);
      setTimeout(() => window.__probe.push([event.key, performance.now() - start]));
    };
    requestAnimationFrame(settle);
  }, true);
}
"""


@dataclass
class Labelling:
    """What the scripted labeller did: keys per class, and per key how long the page took (ms)."""

    keys: dict[int, list[str]] = field(default_factory=dict)
    in_page_ms: list[float] = field(default_factory=list)  # a key that changes the page it is on: to its next frame
    next_class_ms: list[float] = field(default_factory=list)  # "a": to the frame that shows the next class


def _ready(driver, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            driver.execute_script("return location.pathname") == path
            and driver.execute_script("return document.body.dataset.ready") == "yes"
        ):
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {path}")


def label_classes(driver, url: str, truth: dict[int, int], first: int, count: int) -> Labelling:
    """Label ``count`` classes from class ``first`` on, in the browser, the way the module docstring says."""
    from selenium.webdriver.common.action_chains import ActionChains

    done = Labelling()
    driver.get(f"{url}/class/{first}")
    _ready(driver, f"/class/{first}")
    driver.execute_script(LATENCY_PROBE)
    for k in range(first, first + count):
        _ready(driver, f"/class/{k}")
        order = [int(r) for r in driver.execute_script("return [...document.querySelectorAll('.component')].map((s) => s.dataset.rank)")]
        cursor = int(driver.execute_script("return document.querySelector('.component.current').dataset.rank"))
        keys = [] if cursor == truth[k] else [str(order.index(truth[k]) + 1)]
        keys += ["s", "a"]
        done.keys[k] = keys
        for key in keys:
            seen = len(driver.execute_script("return window.__probe"))
            ActionChains(driver).send_keys(key).perform()
            if key == "a" and k + 1 not in truth:  # the last class: nothing to show after it
                break
            deadline = time.monotonic() + 30
            while len(driver.execute_script("return window.__probe")) <= seen:
                assert time.monotonic() < deadline, f"class {k}: key {key} drew nothing"
                time.sleep(0.002)
    for key, ms in driver.execute_script("return window.__probe"):
        (done.next_class_ms if key == "a" else done.in_page_ms).append(ms)
    deadline = time.monotonic() + 30  # the saves go on in the background: wait for them
    while driver.execute_script("return document.getElementById('saves').dataset.state") != "saved":
        assert time.monotonic() < deadline, "the labels were not saved"
        time.sleep(0.01)
    return done


__all__ = ["LATENCY_PROBE", "Labelling", "label_classes", "labelled_before", "synthetic_discovery"]
