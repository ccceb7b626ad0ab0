"""People's labels of discovered components (``spurbench label``): the store and the export.

The labels are a ledger (``spurbench.ledger``), ``DIR/labels.jsonl`` beside ``DIR/discovery.json``:
its header names the discovery's model, weights revision and basis, so labels of another model's
discovery are refused instead of being applied to the wrong components. It keeps the whole history:
every click appends one record ``{class_index, rank, label, labeler, at}`` (locked, synced, O(1) in the
number of records); per (class, rank, labeler) the last record in the file wins (the file's order is
the order the writes happened in, under the lock, so it does not depend on clocks). A folder labelled
before the ledger holds ``DIR/labels.json`` (format 1): it is read as it is, and the first new label
moves its records into the ledger.

The export (``export_components``) is the ``{class: [ranks]}`` table ``spufix fit --components`` reads.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, get_args

from pydantic import Field, StrictInt, StrictStr

from spurbench.errors import SpurbenchError
from spurbench.files import check_inside, real_inside, write_synced
from spurbench.ledger import LEGACY_FORMAT, Identity, Ledger, LedgerKind, check_labeler
from spurbench.schemas import Strict

if TYPE_CHECKING:
    from spurbench.discovery.index import ComponentRecord, DiscoveryIndex

FORMAT_VERSION: Final = LEGACY_FORMAT  # of the format-1 file, labels.json
LABELS_FILE = "labels.jsonl"  # the ledger
LEGACY_LABELS_FILE = "labels.json"  # written before the ledger; read, then migrated on the first new label
LOCK_FILE = ".labels.lock"
# spurbench.discovery's INDEX_FILE and folders, named here too: the cheap checks of `spurbench label` run
# before spurbench.discovery (and torch, 8-60 s) is imported
DISCOVERY_FILE = "discovery.json"
DISCOVERY_FOLDERS = ("images", "bases")
Label = Literal["spurious", "not_spurious", "inconsistent"]
LABELS: tuple[str, ...] = get_args(Label)
Key = tuple[int, int, str]  # (class index, rank, labeler)


class UnknownComponentError(SpurbenchError):
    """A class or component rank the discovery does not have."""


class LabelRecord(Strict):
    class_index: StrictInt  # strict: JSON's true is no 1
    rank: StrictInt
    label: Label
    labeler: StrictStr = Field(min_length=1)
    at: datetime  # when it was given, UTC (ISO-8601 in the file)


class LabelsFile(Strict):
    """The labels of a folder: the format-1 file as it was written, and what ``read_labels`` returns."""

    format: Literal[1] = FORMAT_VERSION
    model: str  # the discovery's model name, weights revision and basis the ranks refer to
    weights_revision: str | None
    basis: Literal["npca", "neurons"]
    records: list[LabelRecord] = Field(default_factory=list)  # the history, oldest first


def _describe(identity: Identity) -> str:
    return f"{identity.get('model')} ({identity.get('weights_revision') or 'no revision'}, {identity.get('basis')})"


LEDGER: LedgerKind[LabelRecord, LabelsFile] = LedgerKind(
    name="labels",
    what="labels file",
    file=LABELS_FILE,
    legacy_file=LEGACY_LABELS_FILE,
    lock_file=LOCK_FILE,
    record=LabelRecord,
    contents=LabelsFile,
    mismatch=lambda found, mine: f"labels of {_describe(found)}, but the discovery is of {_describe(mine)}",
)


def labels_ledger(folder: Path) -> Ledger[LabelRecord, LabelsFile]:
    """The ledger of ``folder``'s labels. Keep one per server: its reads are incremental."""
    return LEDGER.open(folder)


def _identity(index: DiscoveryIndex) -> Identity:
    return {"model": index.model.name, "weights_revision": index.model.weights_revision, "basis": index.basis}


def _read_index(folder: Path) -> DiscoveryIndex:
    # lazy: the discovery package imports torch; the label command checks the store before that
    from spurbench.discovery.index import read_index

    return read_index(folder)


def read_labels(folder: Path, index: DiscoveryIndex | None = None, ledger: Ledger[LabelRecord, LabelsFile] | None = None) -> LabelsFile:
    """The labels of a discovery folder (none yet: an empty file's worth); a one-line SpurbenchError
    for a corrupt store or one that belongs to another model's discovery."""
    index = index or _read_index(Path(folder))
    return (ledger or labels_ledger(folder)).contents(_identity(index))


def check_folder(folder: Path) -> None:
    """The checks ``spurbench label`` makes before importing the pipeline (torch): ``folder`` is a
    discovery folder, and its labels are readable and of the discovery's model (as far as the index's
    JSON says without its schema; ``read_labels`` checks it all again)."""
    folder = Path(folder)
    if not (folder / DISCOVERY_FILE).is_file():
        raise SpurbenchError(f"{folder}: not a discovery folder (no {DISCOVERY_FILE}; run `spurbench discover` first)")
    check_inside(folder, folder / DISCOVERY_FOLDERS[0], f"the served folder {DISCOVERY_FOLDERS[0]}/")  # the app checks again
    LEDGER.check_stored(
        folder,
        DISCOVERY_FILE,
        lambda raw: {"model": raw["model"]["name"], "weights_revision": raw["model"]["weights_revision"], "basis": raw["basis"]},
    )


def latest(labels: LabelsFile) -> dict[Key, LabelRecord]:
    """Each labeler's current label per component: the last record for its (class, rank, labeler)."""
    return {(r.class_index, r.rank, r.labeler): r for r in labels.records}


def _component_exists(index: DiscoveryIndex, class_index: int, rank: int) -> None:
    record = index.classes.get(str(class_index))
    if record is None:
        raise UnknownComponentError(f"the discovery has no class {class_index}")
    if rank not in {c.rank for c in record.components}:
        raise UnknownComponentError(f"class {class_index} has no component of rank {rank}")


def record_label(
    folder: Path,
    class_index: int,
    rank: int,
    label: str,
    labeler: str,
    index: DiscoveryIndex | None = None,
    ledger: Ledger[LabelRecord, LabelsFile] | None = None,
) -> LabelRecord:
    """Append one label to ``folder``'s ledger, locked and synced (``index``: the folder's discovery
    index when the caller has it read already; ``ledger``: the caller's, to keep its reads incremental)."""
    folder = Path(folder)
    index = index or _read_index(folder)
    _component_exists(index, class_index, rank)
    if label not in LABELS:
        raise SpurbenchError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    record = LabelRecord(class_index=class_index, rank=rank, label=label, labeler=check_labeler(labeler), at=datetime.now(timezone.utc))
    return (ledger or labels_ledger(folder)).append(record, _identity(index))


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
        raise SpurbenchError(f"{DISCOVERY_FILE}: class {class_index} component {component.rank} names no neuron, but the basis is neurons")
    return component.neuron


def _warn(message: str) -> None:
    sys.stderr.write(f"warning: {message}\n")


def export_components(folder: Path, min_votes: int = 1, out: Path | None = None, warn: Callable[[str], None] = _warn) -> dict:
    """The components labelled spurious, as ``{"components": {class: [ranks]}, ...}``; written to ``out``
    (atomically) when given, and then never empty (a one-line error instead).

    Vote rule: a component is exported when at least ``min_votes`` distinct labelers' latest label for
    it is "spurious". Only the count of spurious votes matters: "not_spurious" and "inconsistent"
    votes neither subtract nor veto. For the "neurons" basis the table lists neuron indices, not
    ranks. Classes without an exported component are left out. Labels of classes or components the
    discovery does not have (a discovery redone with fewer) are left out with a ``warn`` line.
    """
    if min_votes < 1:
        raise SpurbenchError(f"--min-votes {min_votes}: must be at least 1")
    folder = Path(folder)
    if out is not None:
        check_out(folder, Path(out))
    index = _read_index(folder)
    labels = read_labels(folder, index)
    known = {(int(k), c.rank) for k, record in index.classes.items() for c in record.components}
    votes: dict[tuple[int, int], int] = {}
    unknown: list[Key] = []
    for (k, rank, who), record in latest(labels).items():
        if (k, rank) not in known:
            unknown.append((k, rank, who))
        votes[(k, rank)] = votes.get((k, rank), 0) + (record.label == "spurious")
    if unknown:
        k, rank, _ = min(unknown)
        warn(
            f"{len(unknown)} label(s) name classes or components the discovery does not have (first: class {k} rank {rank}); they are left out of the export"
        )
    table: dict[str, list[int]] = {}
    for k in sorted_classes(index):
        chosen = [c for c in index.classes[str(k)].components if votes.get((k, c.rank), 0) >= min_votes]
        if chosen:
            table[str(k)] = sorted(_exported(index, k, c) for c in chosen)
    labelers = sorted({r.labeler for r in labels.records})
    payload = {
        "components": table,
        "basis": index.basis,
        "model": index.model.name,
        "weights_revision": index.model.weights_revision,
        "min_votes": min_votes,
        "labelers": labelers,
    }
    if out is not None:
        if not table:  # an empty components file only moves the failure to `spufix fit` or `mine`
            raise SpurbenchError(
                f"no component has {min_votes} or more 'spurious' votes ({len(latest(labels))} current labels by {len(labelers)} labelers); nothing to export to {out}: label some components spurious (`spurbench label {folder}`) or lower --min-votes"
            )
        _write_export(Path(out), payload)
    return payload


def check_out(folder: Path, out: Path) -> None:
    """``--out`` of ``label export``: a file to write, never one of the discovery folder's own (its index,
    labels, lock, images or bases), compared by real path so that no link or ``..`` gets round it."""
    own = [folder / DISCOVERY_FILE, *LEDGER.own_files(folder)]
    target = os.path.realpath(out)
    for path in own:
        if target == os.path.realpath(path):
            raise SpurbenchError(
                f"--out {out}: is the discovery folder's own {path.name}, which the export reads; write the components to another file"
            )
    for name in DISCOVERY_FOLDERS:
        if real_inside(folder / name, out):
            raise SpurbenchError(f"--out {out}: is inside the discovery's {name}/ folder; write the components to another file")
    if out.is_dir():
        raise SpurbenchError(f"--out {out}: is a folder; name the components file to write")
    if not out.parent.is_dir():
        raise SpurbenchError(f"--out {out}: folder {out.parent} does not exist")


def _write_export(out: Path, payload: dict) -> None:
    try:
        write_synced(out, json.dumps(payload, indent=1) + "\n")
    except OSError as exc:
        raise SpurbenchError(f"--out {out}: cannot write ({exc.strerror})") from None
