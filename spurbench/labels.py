"""People's labels of discovered components (``spurbench label``): the store and the export.

``DIR/labels.json`` sits beside ``DIR/discovery.json`` and names the discovery's model, weights revision
and basis, so labels of another model's discovery are refused instead of being applied to the wrong
components. It keeps the whole history: every click appends one record ``{class_index, rank, label,
labeler, at}``; per (class, rank, labeler) the last record in the file wins (the file's order is the
order the writes happened in, under the lock, so it does not depend on clocks).

Every write is a read-modify-write under an exclusive ``fcntl.flock`` on ``DIR/.labels.lock``: the
new record is appended to what is on disk at that moment, never a whole-state overwrite, so two browser
tabs or two labelers' servers on one folder lose nothing. The file is replaced atomically (and synced
first), so a crash leaves the old or the new file, never half of one.

The export (``export_components``) is the ``{class: [ranks]}`` table ``spufix fit --components`` reads.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from spurbench.discovery import INDEX_FILE, ComponentRecord, DiscoveryIndex, read_index
from spurbench.errors import SpurbenchError
from spurbench.files import exclusive_lock, write_synced
from spurbench.schemas import read_model

FORMAT_VERSION = 1
LABELS_FILE = "labels.json"
LOCK_FILE = ".labels.lock"
Label = Literal["spurious", "not_spurious", "inconsistent"]
LABELS: tuple[str, ...] = get_args(Label)
Key = tuple[int, int, str]  # (class index, rank, labeler)


class UnknownComponentError(SpurbenchError):
    """A class or component rank the discovery does not have."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelRecord(_Strict):
    class_index: int
    rank: int
    label: Label
    labeler: str = Field(min_length=1)
    at: datetime  # when it was given, UTC (ISO-8601 in the file)


class LabelsFile(_Strict):
    format: Literal[1] = FORMAT_VERSION
    model: str  # the discovery's model name, weights revision and basis the ranks refer to
    weights_revision: str | None
    basis: Literal["npca", "neurons"]
    records: list[LabelRecord] = Field(default_factory=list)  # the history, oldest first


def _empty(index: DiscoveryIndex) -> LabelsFile:
    return LabelsFile(model=index.model.name, weights_revision=index.model.weights_revision, basis=index.basis)


def _describe(name: str, revision: str | None, basis: str) -> str:
    return f"{name} ({revision or 'no revision'}, {basis})"


def read_labels(folder: Path, index: DiscoveryIndex | None = None) -> LabelsFile:
    """The labels of a discovery folder (none yet: an empty file's worth); a one-line SpurbenchError
    for a corrupt file or one that belongs to another model's discovery."""
    folder = Path(folder)
    index = index or read_index(folder)
    path = folder / LABELS_FILE
    if not path.exists():
        return _empty(index)
    labels = read_model(path, LabelsFile, "labels file")
    mine = (index.model.name, index.model.weights_revision, index.basis)
    if (labels.model, labels.weights_revision, labels.basis) != mine:
        raise SpurbenchError(f"{path}: labels of {_describe(labels.model, labels.weights_revision, labels.basis)}, but the discovery is of {_describe(*mine)}")
    return labels


def latest(labels: LabelsFile) -> dict[Key, LabelRecord]:
    """Each labeler's current label per component: the last record for its (class, rank, labeler)."""
    return {(r.class_index, r.rank, r.labeler): r for r in labels.records}


def check_labeler(name: str) -> str:
    """A labeler's name as stored: without surrounding blanks; a one-line error if empty or unprintable."""
    if not name.strip() or not name.isprintable():
        raise SpurbenchError(f"labeler {name!r}: expected a non-empty printable name")
    return name.strip()


def _component_exists(index: DiscoveryIndex, class_index: int, rank: int) -> None:
    record = index.classes.get(str(class_index))
    if record is None:
        raise UnknownComponentError(f"the discovery has no class {class_index}")
    if rank not in {c.rank for c in record.components}:
        raise UnknownComponentError(f"class {class_index} has no component of rank {rank}")


def record_label(folder: Path, class_index: int, rank: int, label: str, labeler: str, index: DiscoveryIndex | None = None) -> LabelRecord:
    """Add one label to ``folder``'s labels.json, merged into what is on disk under an exclusive lock
    (``index``: the folder's discovery index when the caller has it read already)."""
    folder = Path(folder)
    index = index or read_index(folder)
    _component_exists(index, class_index, rank)
    if label not in LABELS:
        raise SpurbenchError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    record = LabelRecord(class_index=class_index, rank=rank, label=label, labeler=check_labeler(labeler), at=datetime.now(timezone.utc))
    try:
        with exclusive_lock(folder / LOCK_FILE):
            labels = read_labels(folder, index)
            labels.records.append(record)
            write_synced(folder / LABELS_FILE, labels.model_dump_json(indent=1) + "\n")
    except OSError as exc:  # a read-only folder, a full disk
        raise SpurbenchError(f"{folder / LABELS_FILE}: cannot write the labels ({exc.strerror})") from None
    return record


def class_done(index: DiscoveryIndex, current: dict[Key, LabelRecord], class_index: int, labeler: str) -> bool:
    """Every component of the class has a label from ``labeler``."""
    record = index.classes[str(class_index)]
    return all((class_index, c.rank, labeler) in current for c in record.components)


def progress(index: DiscoveryIndex, labels: LabelsFile, labeler: str) -> tuple[int, int]:
    """(classes done by ``labeler``, classes in the discovery)."""
    current = latest(labels)
    return sum(class_done(index, current, int(k), labeler) for k in index.classes), len(index.classes)


def sorted_classes(index: DiscoveryIndex) -> list[int]:
    return sorted(int(k) for k in index.classes)


def _exported(index: DiscoveryIndex, class_index: int, component: ComponentRecord) -> int:
    """What the export lists for a component: its rank, or for the neurons basis its unit."""
    if index.basis != "neurons":
        return component.rank
    if component.neuron is None:
        raise SpurbenchError(f"{INDEX_FILE}: class {class_index} component {component.rank} names no neuron, but the basis is neurons")
    return component.neuron


def export_components(folder: Path, min_votes: int = 1, out: Path | None = None) -> dict:
    """The components labelled spurious, as ``{"components": {class: [ranks]}, ...}``; written to ``out``
    (atomically) when given.

    Vote rule: a component is exported when at least ``min_votes`` distinct labelers' latest label for
    it is "spurious". Only the count of spurious votes matters: "not_spurious" and "inconsistent"
    votes neither subtract nor veto. For the "neurons" basis the table lists neuron indices, not
    ranks. Classes without an exported component are left out.
    """
    if min_votes < 1:
        raise SpurbenchError(f"--min-votes {min_votes}: must be at least 1")
    folder = Path(folder)
    index = read_index(folder)
    labels = read_labels(folder, index)
    votes: dict[tuple[int, int], int] = {}
    for (k, rank, _), record in latest(labels).items():
        votes[(k, rank)] = votes.get((k, rank), 0) + (record.label == "spurious")
    table: dict[str, list[int]] = {}
    for k in sorted_classes(index):
        chosen = [c for c in index.classes[str(k)].components if votes.get((k, c.rank), 0) >= min_votes]
        if chosen:
            table[str(k)] = sorted(_exported(index, k, c) for c in chosen)
    payload = {
        "components": table,
        "basis": index.basis,
        "model": index.model.name,
        "weights_revision": index.model.weights_revision,
        "min_votes": min_votes,
        "labelers": sorted({r.labeler for r in labels.records}),
    }
    if out is not None:
        _write_export(Path(out), payload)
    return payload


def _write_export(out: Path, payload: dict) -> None:
    if out.is_dir():
        raise SpurbenchError(f"--out {out}: is a folder; name the components file to write")
    if not out.parent.is_dir():
        raise SpurbenchError(f"--out {out}: folder {out.parent} does not exist")
    try:
        write_synced(out, json.dumps(payload, indent=1) + "\n")
    except OSError as exc:
        raise SpurbenchError(f"--out {out}: cannot write ({exc.strerror})") from None
