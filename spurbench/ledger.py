"""An append-only ledger of people's votes in JSON lines, one design for every kind: the component
labels of a discovery folder (``spurbench.discovery.labels``) and the verdicts on a mining folder's
candidates (``spurbench.mining.verdicts``) are each a :class:`LedgerKind` (its record model, its file
names, the words of its messages) over the one store here.

The file (``DIR/labels.jsonl``, ``DIR/verify.jsonl``) is a header line, then one record per line,
oldest first::

    {"ledger": "labels", "format": 2, "model": "timm:resnet50", "weights_revision": "…", "basis": "npca"}
    {"class_index": 3, "rank": 0, "label": "spurious", "labeler": "alice", "at": "2025-01-02T10:00:00Z"}

The header names what the records are about (its identity: a model, a basis, a pool): records meant
for another folder's contents are refused.

Guarantees:
  - a save costs O(1) in the number of records: under an exclusive lock on the lock file it reads
    the header line, appends one line with ``O_APPEND`` and syncs it; the answer comes after the sync;
  - nothing is lost to two tabs or two servers on one folder: appends are serialised by the lock, and
    the order of the lines is the order the saves happened in (per key the last line wins, whatever
    the clocks say);
  - a crash loses at most the line being written, never acknowledged: readers ignore a line without its
    newline and the next writer cuts it off; any other bad line is a one-line error naming the line;
  - readers take no lock and read only what was appended since their last read (``Ledger.read``).

A folder written before the ledger holds a format-1 JSON file (``labels.json``, ``verify.json``: the
identity and a ``records`` list). It is read as it is; the first save copies its records into a new
ledger (written whole, synced, then renamed into place) and renames the old file ``*.migrated``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel

from spurbench.errors import SpurbenchError
from spurbench.files import check_inside, exclusive_lock, strict_json, write_synced
from spurbench.schemas import first_error_line, read_model

FORMAT_VERSION = 2
LEGACY_FORMAT: Final = 1  # the format-1 JSON file a ledger replaces
MIGRATED_SUFFIX = ".migrated"  # what a format-1 file is renamed to once its records are in the ledger
R = TypeVar("R", bound=BaseModel)  # a record
F = TypeVar("F", bound=BaseModel)  # a folder's records with their identity: the format-1 file's model
Identity = dict[str, Any]  # what the records are about, as the header names it


def check_labeler(name: str) -> str:
    """A labeler's name as stored: without surrounding blanks; a one-line error if empty or unprintable."""
    if not name.strip() or not name.isprintable():
        raise SpurbenchError(f"labeler {name!r}: expected a non-empty printable name")
    return name.strip()


def _why(exc: Exception) -> str:
    return first_error_line(exc, limit=200)


@dataclass(frozen=True)
class LedgerKind(Generic[R, F]):
    """One kind of ledger: its records, its files in a folder and the words of its messages. ``contents``:
    the format-1 file's model (``format``, the identity's fields, ``records``), also what a ledger is
    read as; ``mismatch(found, expected)``: why records of another identity are refused (after the file's name)."""

    name: str  # the header's "ledger": "labels", "verdicts"
    what: str  # how messages name the file: "labels file"
    file: str  # the ledger, "labels.jsonl"
    legacy_file: str  # the format-1 file it replaces, "labels.json"
    lock_file: str
    record: type[R]
    contents: type[F]
    mismatch: Callable[[Identity, Identity], str]

    def open(self, folder: Path) -> Ledger[R, F]:
        """``folder``'s ledger of this kind. Keep one per server: its reads are incremental."""
        folder = Path(folder)
        return Ledger(self, folder / self.file, folder / self.lock_file, folder / self.legacy_file)

    def own_files(self, folder: Path) -> list[Path]:
        """The files this kind keeps in ``folder``: the ledger, its lock, the format-1 file before and after its migration."""
        names = (self.file, self.lock_file, self.legacy_file, self.legacy_file + MIGRATED_SUFFIX)
        return [Path(folder) / name for name in names]

    def check_stored(self, folder: Path, index_file: str, identity_of: Callable[[Any], Identity]) -> None:
        """The cheap check made before the pipeline (torch) is imported: ``folder``'s ledger is readable, and
        of what the folder's index says, as far as ``identity_of`` finds it in the index's plain JSON (no
        schema: a broken index is left to its own reader, which says how in its own words)."""
        ledger = self.open(folder)
        found, _ = ledger.read()
        try:
            mine = identity_of(strict_json((Path(folder) / index_file).read_text(encoding="utf-8")))
        except (OSError, ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError):
            return
        if found is not None:
            ledger.check(found, mine)


@dataclass
class _Seen(Generic[R]):
    """What a reader has parsed so far: the file (inode), how far (bytes), its identity and records."""

    inode: int = -1
    offset: int = 0
    lines: int = 0
    identity: Identity | None = None
    records: list[R] = field(default_factory=list)


@dataclass
class Ledger(Generic[R, F]):
    """One folder's ledger of a ``kind`` (:meth:`LedgerKind.open`), its lock, the format-1 file it replaces."""

    kind: LedgerKind[R, F]
    path: Path
    lock: Path
    legacy: Path
    _seen: _Seen[R] = field(default_factory=_Seen, repr=False)
    _legacy_seen: tuple[tuple[int, int, int], Identity, list[R]] | None = field(default=None, repr=False)
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def source(self) -> Path:
        """The file the records are read from now: the ledger, or before the first save a format-1 file."""
        return self.legacy if not self.path.exists() and self.legacy.exists() else self.path

    def check(self, found: Identity, expected: Identity) -> None:
        """A one-line error when the stored records (of ``found``) are not about ``expected``."""
        if found != expected:
            raise SpurbenchError(f"{self.source()}: {self.kind.mismatch(found, expected)}")

    def contents(self, identity: Identity) -> F:
        """The records as on disk now, oldest first, with ``identity`` (none saved yet: no records); a
        one-line error for a corrupt store or records about something else."""
        found, records = self.read()
        if found is not None:
            self.check(found, identity)
        return self.kind.contents.model_construct(format=LEGACY_FORMAT, records=records, **identity)

    def read(self) -> tuple[Identity | None, list[R]]:
        """(identity, records oldest first) as on disk now; (None, []) when nothing was saved yet."""
        with self._mutex:
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 (closed below, after the read under the lock)
            except FileNotFoundError:
                return self._read_legacy()
            except OSError as exc:
                raise SpurbenchError(f"{self.path}: cannot read the {self.kind.what} ({exc.strerror})") from None
            with handle:
                info = os.fstat(handle.fileno())
                seen = self._seen
                if seen.inode != info.st_ino or info.st_size < seen.offset:  # replaced (a migration), or cut
                    seen = _Seen(inode=info.st_ino)
                handle.seek(seen.offset)
                data = handle.read(max(0, info.st_size - seen.offset))
            end = data.rfind(b"\n") + 1  # a last line without its newline is still being written (or torn)
            parsed = _Seen(seen.inode, seen.offset + end, seen.lines, seen.identity, list(seen.records))
            for line in data[:end].split(b"\n")[:-1]:
                parsed.lines += 1
                if parsed.identity is None:
                    parsed.identity = self._header(line, parsed.lines)
                else:
                    parsed.records.append(self._record(line, parsed.lines))
            if parsed.identity is None and parsed.offset == 0 and info.st_size:
                raise SpurbenchError(f"{self.path}: not a valid {self.kind.what}: no complete header line")
            self._seen = parsed
            return parsed.identity, list(parsed.records)

    def _header(self, line: bytes, number: int) -> Identity:
        try:
            header = strict_json(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise SpurbenchError(f"{self.path}: not a valid {self.kind.what} at line {number}: {_why(exc)}") from None
        if not isinstance(header, dict) or header.get("ledger") != self.kind.name or header.get("format") != FORMAT_VERSION:
            raise SpurbenchError(
                f"{self.path}: not a valid {self.kind.what}: its first line is no {self.kind.name} ledger header of format {FORMAT_VERSION}"
            )
        return {k: v for k, v in header.items() if k not in ("ledger", "format")}

    def _record(self, line: bytes, number: int) -> R:
        try:
            return self.kind.record.model_validate(strict_json(line.decode("utf-8")))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # ValidationError is a ValueError
            raise SpurbenchError(f"{self.path}: not a valid {self.kind.what} at line {number}: {_why(exc)}") from None

    def _read_legacy(self) -> tuple[Identity | None, list[R]]:
        try:
            info = self.legacy.stat()
        except FileNotFoundError:
            return None, []
        except OSError as exc:
            raise SpurbenchError(f"{self.legacy}: cannot read the {self.kind.what} ({exc.strerror})") from None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if self._legacy_seen is None or self._legacy_seen[0] != stamp:
            fields = dict(read_model(self.legacy, self.kind.contents, self.kind.what))  # the fields as parsed, records still models
            records = fields.pop("records")
            del fields["format"]
            self._legacy_seen = (stamp, fields, list(records))
        return dict(self._legacy_seen[1]), list(self._legacy_seen[2])

    def append(self, record: R, identity: Identity) -> R:
        """Append ``record`` (see ``append_many``)."""
        return self.append_many([record], identity)[0]

    def append_many(self, records: list[R], identity: Identity) -> list[R]:
        """Append ``records`` in one write under the lock, synced before returning them. A new ledger gets
        ``identity`` as its header (and a format-1 file's records first); records of another identity are
        refused before anything is written."""
        line = b"".join(record.model_dump_json().encode("utf-8") + b"\n" for record in records)
        for own in (self.lock, self.path):  # a link in their place (a shared folder) must not make a save write elsewhere
            check_inside(self.path.parent, own, f"the {self.kind.what}'s own file")
        try:
            with exclusive_lock(self.lock):
                if self.path.exists():
                    self._append_line(line, identity)
                    if self.legacy.exists():  # a migration cut short after its rename-in
                        os.replace(self.legacy, self.legacy.with_name(self.legacy.name + MIGRATED_SUFFIX))
                else:
                    self._create(line, identity)
        except OSError as exc:  # a read-only folder, a full disk, a folder in the lock file's place
            raise SpurbenchError(f"{self.path}: cannot write the {self.kind.what} ({exc.strerror})") from None
        return records

    def _create(self, line: bytes, identity: Identity) -> None:
        header = {"ledger": self.kind.name, "format": FORMAT_VERSION, **identity}
        lines = [json.dumps(header, separators=(",", ":"), ensure_ascii=False)]  # compact, like the records
        old_identity, old_records = self._read_legacy()
        if old_identity is not None:
            self.check(old_identity, identity)
            lines += [r.model_dump_json() for r in old_records]
        write_synced(self.path, "\n".join(lines) + "\n" + line.decode("utf-8"))
        _sync_folder(self.path.parent)
        if old_identity is not None:  # its records are in the ledger now: keep the file, never read it again
            os.replace(self.legacy, self.legacy.with_name(self.legacy.name + MIGRATED_SUFFIX))

    def _append_line(self, line: bytes, identity: Identity) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        try:
            first = _first_line(fd)
            if first is None:
                raise SpurbenchError(f"{self.path}: not a valid {self.kind.what}: no complete header line")
            self.check(self._header(first, 1), identity)
            _cut_torn_tail(fd)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)


def _first_line(fd: int, limit: int = 1 << 20) -> bytes | None:
    """The ledger's header line (without its newline), read from the start; None if it has none."""
    data = b""
    while len(data) < limit:
        block = os.pread(fd, 4096, len(data))
        if not block:
            return None
        data += block
        end = data.find(b"\n")
        if end >= 0:
            return data[:end]
    return None


def _cut_torn_tail(fd: int) -> None:
    """Cut a last line left without its newline by a writer that died mid-write (never acknowledged)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    position = size
    while position > 0:
        start = max(0, position - 4096)
        block = os.pread(fd, position - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            os.ftruncate(fd, start + newline + 1)
            return
        position = start


def _sync_folder(folder: Path) -> None:
    """Sync a folder's entry list, so a newly created ledger survives a power cut, not only its bytes."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["FORMAT_VERSION", "LEGACY_FORMAT", "MIGRATED_SUFFIX", "Identity", "Ledger", "LedgerKind", "check_labeler"]
