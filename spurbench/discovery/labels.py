"""People's labels of discovered components (``spurbench label``): the store and the export.

The labels are a ledger (``spurbench.ledger``), ``DIR/labels.jsonl`` beside ``DIR/discovery.json``:
its header names the discovery's model, weights revision and basis, so labels of another model's
discovery are refused instead of being applied to the wrong components. It keeps the whole history:
every click appends one record ``{class_index, rank, label, labeler, at}`` (locked, synced, O(1) in the
number of records); per (class, rank, labeler) the last record in the file wins (the file's order is
the order the writes happened in, under the lock, so it does not depend on clocks). A folder labelled
before the ledger holds ``DIR/labels.json`` (format 1): it is read as it is, and the first new label
moves its records into the ledger.

The export (``spurbench.discovery.label_export``) is the ``{class: [ranks]}`` table ``spufix fit
--components`` reads, with the names people gave the features.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, get_args

from pydantic import Field, StrictInt, StrictStr

from spurbench.errors import SpurbenchError
from spurbench.files import check_inside
from spurbench.ledger import LEGACY_FORMAT, Identity, Ledger, LedgerKind, check_labeler
from spurbench.schemas import FEATURE_NAME_LENGTH, Strict

if TYPE_CHECKING:
    from spurbench.discovery.index import DiscoveryIndex

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
    # what the person saw, for a spurious label only ("bird feeder"); records written before names have none
    name: StrictStr | None = Field(default=None, min_length=1, max_length=FEATURE_NAME_LENGTH)


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
    name: str | None = None,
) -> LabelRecord:
    """Append one label to ``folder``'s ledger, locked and synced (``index``: the folder's discovery
    index when the caller has it read already; ``ledger``: the caller's, to keep its reads incremental)."""
    folder = Path(folder)
    index = index or _read_index(folder)
    _component_exists(index, class_index, rank)
    if label not in LABELS:
        raise SpurbenchError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    record = LabelRecord(
        class_index=class_index,
        rank=rank,
        label=label,
        labeler=check_labeler(labeler),
        at=datetime.now(timezone.utc),
        name=check_name(name, label),
    )
    return (ledger or labels_ledger(folder)).append(record, _identity(index))


def check_name(name: str | None, label: str) -> str | None:
    """A feature's name as stored: one line, spaces collapsed, at most FEATURE_NAME_LENGTH characters, and only on a
    spurious label (None: no name; an empty name is none)."""
    if name is None:
        return None
    cleaned = " ".join(name.split())
    if not cleaned:
        return None
    if label != "spurious":
        raise SpurbenchError(f"a name is for a spurious label, not for {label!r}")
    if len(cleaned) > FEATURE_NAME_LENGTH:
        raise SpurbenchError(f"name {cleaned[:20]!r}...: {len(cleaned)} characters, at most {FEATURE_NAME_LENGTH}")
    return cleaned


def record_labels(
    folder: Path,
    class_index: int,
    ranks: list[int],
    label: str,
    labeler: str,
    index: DiscoveryIndex | None = None,
    ledger: Ledger[LabelRecord, LabelsFile] | None = None,
) -> list[LabelRecord]:
    """The same label (no name) on several components of a class, appended in one locked, synced write
    ("the rest are not spurious"); nothing is written when one of them does not exist."""
    folder = Path(folder)
    index = index or _read_index(folder)
    if not ranks or len(set(ranks)) != len(ranks):
        raise SpurbenchError(f"class {class_index}: ranks {ranks}: expected distinct component ranks, at least one")
    for rank in ranks:
        _component_exists(index, class_index, rank)
    if label not in LABELS:
        raise SpurbenchError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    at, who = datetime.now(timezone.utc), check_labeler(labeler)
    records = [LabelRecord(class_index=class_index, rank=r, label=label, labeler=who, at=at) for r in ranks]
    return (ledger or labels_ledger(folder)).append_many(records, _identity(index))


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
