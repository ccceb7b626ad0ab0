"""Where spurbench keeps derived data (trained planted models, feature shards, text heads)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import platformdirs


def cache_root() -> Path:
    """``$SPURBENCH_CACHE`` if set, else the platform's user cache dir."""
    root = os.environ.get("SPURBENCH_CACHE") or platformdirs.user_cache_dir("spurbench")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


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


_DIGESTS: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes: the identity of a local checkpoint.

    Streamed in 1 MiB blocks (never deserialised). Memoised by (real path, size, mtime) in this process
    and in the cache folder, so a sweep, or the many jobs of a cluster sweep, hash each file once; a
    file replaced at the same path changes size or mtime and is hashed again.
    """
    real = Path(path).resolve()
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    memo = cache_dir("digests") / f"{stable_hash(key[0])}.json"
    try:
        stored = json.loads(memo.read_text())
        if [stored["path"], stored["size"], stored["mtime_ns"]] == list(key):
            _DIGESTS[key] = stored["digest"]
            return stored["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no memo yet, or an unreadable one: hash again
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = f"sha256:{digest.hexdigest()}"
    _DIGESTS[key] = value
    with atomic_path(memo) as tmp:
        tmp.write_text(json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2], "digest": value}))
    return value


def stable_hash(payload: Any, length: int = 16) -> str:
    """Hash a JSON-serialisable payload independent of dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


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
