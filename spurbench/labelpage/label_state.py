"""What the label pages show, as plain data: the class list with each class's state, and one class's
labels (what the class page renders on load and what the label API answers with), all read from a
``LabelView`` (``spurbench.labelpage.label_view``), so an answer costs the same at 30 labels and at 10,000."""

from __future__ import annotations

import itertools
import statistics
from typing import Literal

from spurbench.discovery.index import ClassRecord, DiscoveryIndex
from spurbench.discovery.labels import LabelRecord, sorted_classes
from spurbench.labelpage.label_view import LabelView

Order = Literal["share", "rank"]
ORDERS: tuple[Order, ...] = ("share", "rank")
PACE_CLASSES = 20  # the pace is the median time between the last this many classes finished
BREAK_S = 600  # a gap longer than this between two finished classes is a break, not labelling time


def class_done(index: DiscoveryIndex, view: LabelView, class_index: int, labeler: str) -> bool:
    """Every component of the class has a label from ``labeler``."""
    labelled = view.ranks.get((labeler, class_index), set())
    return all(c.rank in labelled for c in index.classes[str(class_index)].components)


def done_classes(index: DiscoveryIndex, view: LabelView, labeler: str) -> set[int]:
    return {int(k) for k in index.classes if (labeler, int(k)) in view.ranks and class_done(index, view, int(k), labeler)}


def next_unlabelled(index: DiscoveryIndex, done: set[int], after: int | None = None) -> int | None:
    """The first class after ``after`` (wrapping round, ``after`` itself last) not in ``done``; from the
    first class when ``after`` is None; None when every class is done."""
    order = sorted_classes(index)
    if after is not None and after in order:
        start = order.index(after) + 1
        order = order[start:] + order[:start]
    return next((k for k in order if k not in done), None)


def component_order(record: ClassRecord, order: Order) -> list[int]:
    """The ranks of a class's components as the page shows them: by share of the logit's variance, largest
    first (ties by rank), or by rank."""
    if order == "rank":
        return [c.rank for c in record.components]
    return [c.rank for c in sorted(record.components, key=lambda c: (-c.variance_share, c.rank))]


def pace(index: DiscoveryIndex, view: LabelView, done: set[int], labeler: str) -> dict[str, float] | None:
    """The labeler's measured pace: the median time between consecutive finished classes (a class finishes
    at its labeler's last current label), over the last PACE_CLASSES, breaks left out; and the time left
    for the classes not done at that pace. None until two classes are finished."""
    times = sorted(view.last_at[(labeler, k)] for k in done)
    gaps = [b - a for a, b in itertools.pairwise(times) if b - a <= BREAK_S][-PACE_CLASSES:]
    if not gaps:
        return None
    per_class = statistics.median(gaps)
    return {"seconds_per_class": per_class, "seconds_left": per_class * (len(index.classes) - len(done))}


def _progress(index: DiscoveryIndex, view: LabelView, done: set[int], labeler: str) -> dict:
    return {"done": len(done), "total": len(index.classes), "pace": pace(index, view, done, labeler)}


def class_rows(index: DiscoveryIndex, view: LabelView, labeler: str) -> dict:
    """The index page: every class with how many of its components ``labeler`` has labelled."""
    done = done_classes(index, view, labeler)
    rows = []
    for k in sorted_classes(index):
        record = index.classes[str(k)]
        labelled = view.ranks.get((labeler, k), set())
        rows.append(
            {
                "index": k,
                "name": record.class_name,
                "components": len(record.components),
                "labelled": sum(c.rank in labelled for c in record.components),
                "done": k in done,
            }
        )
    return {"rows": rows, "progress": _progress(index, view, done, labeler), "next_unlabelled": next_unlabelled(index, done)}


def _entry(record: LabelRecord) -> dict:
    return record.model_dump(mode="json", include={"labeler", "label", "at", "name"})


def class_state(index: DiscoveryIndex, view: LabelView, labeler: str, class_index: int) -> dict:
    """One class's labels: ``labeler``'s own per rank, the other labelers' per rank, and the progress."""
    ranks = [c.rank for c in index.classes[str(class_index)].components]
    mine = {str(r): _entry(view.current[(class_index, r, labeler)]) for r in ranks if (class_index, r, labeler) in view.current}
    others: dict[str, list[dict]] = {}
    for who in sorted({who for who, k in view.ranks if k == class_index and who != labeler}):
        for r in ranks:
            if (class_index, r, who) in view.current:
                others.setdefault(str(r), []).append(_entry(view.current[(class_index, r, who)]))
    done = done_classes(index, view, labeler)
    order = sorted_classes(index)
    position = order.index(class_index)
    return {
        "class_index": class_index,
        "labeler": labeler,
        "mine": mine,
        "others": others,
        "done": class_index in done,
        "progress": _progress(index, view, done, labeler),
        "next_unlabelled": next_unlabelled(index, done, after=class_index),
        "previous_class": order[position - 1] if position > 0 else None,
        "next_class": order[position + 1] if position + 1 < len(order) else None,
        "names": view.names(),
    }


def all_labels(index: DiscoveryIndex, view: LabelView, labeler: str) -> dict:
    """Every labeler's current label of every component, with ``labeler``'s progress."""
    done = done_classes(index, view, labeler)
    return {
        "labeler": labeler,
        "progress": _progress(index, view, done, labeler),
        "labels": [{"class_index": k, "rank": r, **_entry(v)} for (k, r, _), v in sorted(view.current.items())],
    }
