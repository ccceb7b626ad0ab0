"""Small file and value helpers every stage shares: atomic writes, strict JSON, hashes, slugs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spurbench.errors import DataError


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; renamed onto ``target`` when the block succeeds
    and removed when it fails, so no reader (or resumed run) ever sees half a file."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Remove the temporaries ``atomic_path`` left under ``folder`` by a process that no longer runs
    (a SIGKILL runs no cleanup), so that a run started again leaves the files an uninterrupted run leaves."""
    for tmp in Path(folder).rglob(".*.tmp") if Path(folder).is_dir() else []:
        pid = tmp.name.rsplit(".", 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: does the writer still run?
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (PermissionError, OverflowError):  # another user's process, or no such pid at all
            pass


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, left in place) for the block, waiting for it: one
    read-modify-write at a time across threads and processes. filelock's native lock (``flock`` on
    Linux and macOS, ``LockFileEx`` on Windows) is the kernel's, so a dead process holds it no more."""
    # lazy: it costs ~50 ms to import, which only a process that writes a ledger should pay
    from filelock import FileLock

    with FileLock(path):  # a new lock object per call: two threads of one process also wait for each other
        yield


def real_inside(root: str | Path, path: str | Path) -> bool:
    """``path``'s real path (every symlink on the way resolved) lies inside ``root``'s real path.

    The one containment rule for every folder spurbench serves or reads on a user's behalf: checking
    against a root that was resolved once is not enough, because a subfolder of it may itself be a
    link out (``DIR/images -> /``)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def check_inside(root: str | Path, path: str | Path, what: str) -> Path:
    """``path``'s real path when it lies inside ``root``'s; a one-line DataError naming the link otherwise."""
    if not real_inside(root, path):
        raise DataError(
            f"{path}: {what} leads out of {root} (to {os.path.realpath(path)}); spurbench reads only inside the folder it was given, so pass the folder the link points to"
        )
    return Path(os.path.realpath(path))


def file_inside(root: str | Path, relative: str) -> Path | None:
    """The file ``root/relative`` when it exists and its real path lies inside ``root``'s real path,
    else None (what a server answers 404 to: ``..``, absolute names, links out at any level)."""
    if "\x00" in relative:
        return None
    path = Path(root) / relative
    try:
        if not real_inside(root, path) or not path.is_file():
            return None
    except OSError:  # a name too long for the file system (ENAMETOOLONG), a loop of links: no such file
        return None
    return Path(os.path.realpath(path))


def write_synced(path: str | Path, text: str) -> None:
    """Write ``text`` atomically, synced before the rename: after a crash the old or the new file, never a torn one."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def stable_hash(payload: Any, length: int = 16) -> str:
    """Hash a JSON-serialisable payload independent of dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, streamed in 1 MiB blocks (never deserialised)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def strict_json(text: str) -> Any:
    """Parse JSON as the standard defines it: a duplicate key or NaN / Infinity is an error (Python's
    json module accepts both silently, and a duplicate key would hide the value that was verified)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(text, object_pairs_hook=unique, parse_constant=no_constant)


def slug(name: str, sep: str = "_") -> str:
    """A file- and repo-name-safe form of a name: ``timm:resnet50.a1_in1k`` -> ``timm_resnet50.a1_in1k``."""
    return re.sub(r"[^A-Za-z0-9._-]+", sep, name).strip(sep)


def plain(value: Any, sequence: Callable[[list], Any] = list) -> Any:
    """Tuples, lists, dicts and numpy / torch scalars -> plain Python values (sequences as ``sequence``),
    so that values serialise, hash and compare the same after a JSON round trip."""
    if isinstance(value, dict):
        return {str(k): plain(v, sequence) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return sequence([plain(v, sequence) for v in value])
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value
