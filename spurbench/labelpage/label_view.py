"""The labels as the pages ask about them, kept up to date record by record: each labeler's current label
per component, which ranks each labeler has labelled per class, when they last labelled it, and how often
each feature name is in use. The ledger only appends, so a server brings its view up to date with the
records added since its last look, whatever the number stored (10,000 labels: a few milliseconds a
request instead of recounting every record for each answer).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from spurbench.discovery.labels import Key, LabelRecord, LabelsFile

T = TypeVar("T")


@dataclass
class LabelView:
    """What ``records[:seen]`` of one labels store say (``update`` adds the rest)."""

    current: dict[Key, LabelRecord] = field(default_factory=dict)  # (class, rank, labeler) -> the last record for it
    ranks: dict[tuple[str, int], set[int]] = field(default_factory=dict)  # (labeler, class) -> the ranks it has labelled
    last_at: dict[tuple[str, int], float] = field(default_factory=dict)  # (labeler, class) -> its latest current label's time
    name_uses: dict[str, int] = field(default_factory=dict)  # a feature name -> the current spurious labels that give it
    seen: int = 0
    last: LabelRecord | None = None  # records[seen - 1], to notice a store that was replaced (a migration)

    def add(self, record: LabelRecord) -> None:
        key = (record.class_index, record.rank, record.labeler)
        before = self.current.get(key)
        if before is not None and before.label == "spurious" and before.name is not None:
            self.name_uses[before.name] -= 1
            if not self.name_uses[before.name]:
                del self.name_uses[before.name]
        if record.label == "spurious" and record.name is not None:
            self.name_uses[record.name] = self.name_uses.get(record.name, 0) + 1
        self.current[key] = record
        who = (record.labeler, record.class_index)
        self.ranks.setdefault(who, set()).add(record.rank)
        self.last_at[who] = max(self.last_at.get(who, 0.0), record.at.timestamp())

    def names(self) -> list[str]:
        """Every feature name in use, most used first (what the page offers as you type)."""
        return sorted(self.name_uses, key=lambda name: (-self.name_uses[name], name.casefold()))


class LabelViews:
    """One server's view of its folder's labels, brought up to date on each request (thread-safe: the app's
    handlers run in a thread pool)."""

    def __init__(self) -> None:
        self._view = LabelView()
        self._lock = threading.Lock()

    def read(self, labels: LabelsFile, answer: Callable[[LabelView], T]) -> T:
        """``answer(view)`` for the view of ``labels`` (as ``read_labels`` returned them just now), under the
        lock: no other request changes the view while it is read."""
        with self._lock:
            return answer(self._up_to_date(labels))

    def _up_to_date(self, labels: LabelsFile) -> LabelView:
        records, view = labels.records, self._view
        if view.seen > len(records) or (view.seen and records[view.seen - 1] is not view.last):
            view = LabelView()  # not the records this view was built from: build it again
        for record in records[view.seen :]:
            view.add(record)
        view.seen, view.last = len(records), records[-1] if records else None
        self._view = view
        return view


__all__ = ["LabelView", "LabelViews"]
