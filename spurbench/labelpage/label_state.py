"""What the label pages show, as plain data: the class list with each class's state, and one class's
labels (what the class page renders on load and what the label API answers with)."""

from __future__ import annotations

from spurbench.discovery.index import DiscoveryIndex
from spurbench.discovery.labels import Key, LabelRecord, LabelsFile, class_done, latest, sorted_classes


def next_unlabelled(index: DiscoveryIndex, current: dict[Key, LabelRecord], labeler: str, after: int | None = None) -> int | None:
    """The first class after ``after`` (wrapping round, ``after`` itself last) that ``labeler`` has not
    finished; from the first class when ``after`` is None; None when every class is done."""
    order = sorted_classes(index)
    if after is not None and after in order:
        start = order.index(after) + 1
        order = order[start:] + order[:start]
    return next((k for k in order if not class_done(index, current, k, labeler)), None)


def _progress(index: DiscoveryIndex, current: dict[Key, LabelRecord], labeler: str) -> dict[str, int]:
    return {"done": sum(class_done(index, current, int(k), labeler) for k in index.classes), "total": len(index.classes)}


def class_rows(index: DiscoveryIndex, labels: LabelsFile, labeler: str) -> dict:
    """The index page: every class with how many of its components ``labeler`` has labelled."""
    current = latest(labels)
    rows = []
    for k in sorted_classes(index):
        record = index.classes[str(k)]
        labelled = sum((k, c.rank, labeler) in current for c in record.components)
        rows.append(
            {
                "index": k,
                "name": record.class_name,
                "components": len(record.components),
                "labelled": labelled,
                "done": labelled == len(record.components),
            }
        )
    return {"rows": rows, "progress": _progress(index, current, labeler), "next_unlabelled": next_unlabelled(index, current, labeler)}


def _entry(record: LabelRecord) -> dict:
    return record.model_dump(mode="json", include={"labeler", "label", "at"})


def class_state(index: DiscoveryIndex, labels: LabelsFile, labeler: str, class_index: int) -> dict:
    """One class's labels: ``labeler``'s own per rank, the other labelers' per rank, and the progress."""
    current = latest(labels)
    ranks = [c.rank for c in index.classes[str(class_index)].components]
    mine = {str(r): _entry(current[(class_index, r, labeler)]) for r in ranks if (class_index, r, labeler) in current}
    others: dict[str, list[dict]] = {}
    for (k, rank, who), record in sorted(current.items()):
        if k == class_index and who != labeler and rank in ranks:
            others.setdefault(str(rank), []).append(_entry(record))
    order = sorted_classes(index)
    position = order.index(class_index)
    return {
        "class_index": class_index,
        "labeler": labeler,
        "mine": mine,
        "others": others,
        "done": class_done(index, current, class_index, labeler),
        "progress": _progress(index, current, labeler),
        "next_unlabelled": next_unlabelled(index, current, labeler, after=class_index),
        "previous_class": order[position - 1] if position > 0 else None,
        "next_class": order[position + 1] if position + 1 < len(order) else None,
    }


def all_labels(index: DiscoveryIndex, labels: LabelsFile, labeler: str) -> dict:
    """Every labeler's current label of every component, with ``labeler``'s progress."""
    current = latest(labels)
    return {
        "labeler": labeler,
        "progress": _progress(index, current, labeler),
        "labels": [{"class_index": k, "rank": r, **_entry(v)} for (k, r, _), v in sorted(current.items())],
    }
