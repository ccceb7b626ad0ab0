"""Where spurbench keeps derived data (trained planted models, feature shards, text heads)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

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


def stable_hash(payload: Any, length: int = 16) -> str:
    """Hash a JSON-serialisable payload independent of dict order."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
