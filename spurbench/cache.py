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


def stable_hash(payload: Any, length: int = 16) -> str:
    """Hash a JSON-serialisable payload independent of dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
