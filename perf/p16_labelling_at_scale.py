"""P16: labelling at ImageNet scale (issue 28). A synthetic discovery of 1,000 classes x 10 components,
one spurious component per class; the labels of the first 1000 - N classes are stored already (9,800 to
9,990 records), and a scripted labeller who knows the ground truth labels the last N classes in headless
Chromium with the page's keys (its spurious component's position digit unless the cursor is on it, ``s``,
then ``a``: the rest not spurious, saved, and the next class opened).

Prints the key presses per class (goal: at most 3) and the page's latency per key (goal: at most 50 ms at
10,000 records): for a key that changes the page it is on, from the keydown to the next frame; for ``a``,
from the keydown to the frame that shows the next class (fetched in advance and shown in place while the
save goes on in the background), with the median, the 95th percentile and the ratio to the goal.

    python perf/p16_labelling_at_scale.py [N]       # N classes labelled in the browser (default 20)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests/support helpers

from tests.support.label_scale import label_classes, labelled_before, synthetic_discovery
from tests.support.label_server import chromium, serve

CLASSES, GOAL_KEYS, GOAL_MS = 1000, 3, 50.0


def _summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return f"{name}: median {median:.1f} ms, p95 {p95:.1f} ms over {len(values)} keys; median / goal {median / GOAL_MS:.2f}, p95 / goal {p95 / GOAL_MS:.2f}"


def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="spurbench-p16-") as root:
        folder = Path(root) / "discovery"
        truth = synthetic_discovery(folder, CLASSES)
        stored = labelled_before(folder, truth, list(range(CLASSES - count)), "alice")
        with serve(folder, "alice") as url, chromium() as driver:
            done = label_classes(driver, url, truth, CLASSES - count, count)
    keys = [len(pressed) for pressed in done.keys.values()]
    print(f"{CLASSES} classes x 10 components, {stored} labels stored before, {count} classes labelled in the browser")
    print(f"keys per class: mean {statistics.mean(keys):.2f}, max {max(keys)} (goal <= {GOAL_KEYS}; was 10 or more)")
    print(_summary("in-page keys (digit, s)", done.in_page_ms))
    print(_summary("a: the next class shown (its save in the background)", done.next_class_ms))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
