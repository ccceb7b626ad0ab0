"""Where spurbench keeps derived data (trained models, feature shards, text heads, digests)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs

from spurbench.files import atomic_path, file_sha256, stable_hash


def cache_root() -> Path:
    """``$SPURBENCH_CACHE`` if set, else the platform's user cache dir. Only computes the path."""
    return Path(os.environ.get("SPURBENCH_CACHE") or platformdirs.user_cache_dir("spurbench"))


def make_cache_dir(*parts: str) -> Path:
    """Create (if needed) and return the cache folder ``<cache root>/<parts...>``."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


_DIGESTS: dict[tuple[str, int, int], str] = {}


def content_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes: the identity of a local checkpoint.

    Memoised by (real path, size, mtime) in this process and in the cache folder, so a sweep, or the
    many jobs of a cluster sweep, hash each file once; a file replaced at the same path changes size
    or mtime and is hashed again.
    """
    real = Path(path).resolve()
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    memo = make_cache_dir("digests") / f"{stable_hash(key[0])}.json"
    try:
        stored = json.loads(memo.read_text())
        if [stored["path"], stored["size"], stored["mtime_ns"]] == list(key):
            _DIGESTS[key] = stored["digest"]
            return stored["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no memo yet, or an unreadable one: hash again
    value = f"sha256:{file_sha256(real)}"
    _DIGESTS[key] = value
    with atomic_path(memo) as tmp:
        tmp.write_text(json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2], "digest": value}))
    return value
