"""Decode once per sweep: an opt-in, size-bounded folder of preprocessed model inputs.

Models that share a preprocessing (input size, crop, interpolation, protocol) see the same pixels, so
a sweep need not decode and resize the same JPEGs once per model. An *entry* holds the uint8 inputs
[N, 3, H, W] of one image set under one preprocessing, *before* normalisation: mean and std are not
part of its key (they are applied on the model's device, ``preprocessing.normalize_on_device``), so
models with other means still share it. The caller builds the key (``dataloading.pixel_cache_key``:
benchmark name, revision, checksum, image ids in order, positives source, per-role geometry, and the
Pillow / torchvision versions that decode and resize).

An entry is a folder ``<name>-<key hash>/`` of the shard store (``spurbench.shard_store``): its
manifest and shards of ``SHARD_IMAGES`` images (tensor ``pixels``, with the shard's image ids and the
sha256 of its bytes). Shards are written atomically, so concurrent sweep jobs may read and fill the
same entry: a reader sees a whole shard or none, and two writers write the same bytes. Each shard is
checked when used (ids, shape, digest); a damaged or vanished one is decoded again with a note,
never trusted.

The bound (``max_bytes``): opening an entry makes room for its full size by deleting least recently
used entries (by manifest mtime, refreshed on every open); an entry larger than the bound is not
cached. Only folders with this module's manifest are ever deleted. Jobs filling different entries at
the same time may overshoot the bound by what they write concurrently; an entry another job evicts
while in use is decoded again, not read half.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from spurbench.errors import SpurbenchError
from spurbench.files import slug, stable_hash
from spurbench.shard_store import MANIFEST, ShardRead, ShardSpec, read_manifest, read_shard, write_manifest, write_shard

FORMAT = 1
KIND = "spurbench-pixel-cache"
SHARD_IMAGES = 256  # 256 x 3 x 224 x 224 uint8 = 38 MB per shard: large sequential reads, bounded memory
DEFAULT_GB = 20.0  # 12.5k images at 224 px are 1.9 GB; room for a sweep over several preprocessings

Decode = Callable[[list[int]], Iterable[torch.Tensor]]  # positions -> uint8 batches of those images, in order


def _note(message: str) -> None:
    # runtime.note's format; this module sits beside runtime in the layers and may not import it
    sys.stderr.write(f"note: pixel cache {message}\n")


def _why(read: ShardRead) -> str:
    # this cache's words for a shard of other images or another layout (one reason: the key was the same)
    return "lists other images or has another shape" if read.problem in ("other images", "other layout") else read.why


def _size(folder: Path) -> int:
    total = 0
    for path in folder.iterdir() if folder.is_dir() else ():
        try:
            total += path.stat().st_size
        except OSError:  # removed by another job meanwhile
            pass
    return total


class PixelCache:
    """A pixel cache folder and its size bound. Build it with :meth:`open` (checks the folder)."""

    def __init__(self, root: Path, max_bytes: int):
        self.root, self.max_bytes = root, max_bytes

    @classmethod
    def open(cls, root: str | Path, max_gb: float = DEFAULT_GB) -> PixelCache:
        """The cache at ``root`` (created), or a one-line SpurbenchError for a bad folder or bound."""
        if isinstance(max_gb, bool) or not (isinstance(max_gb, (int, float)) and math.isfinite(max_gb) and max_gb > 0):
            raise SpurbenchError(f"--pixel-cache-gb must be a positive number of GB, not {max_gb!r}")
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise SpurbenchError(f"pixel cache {str(root)!r} exists and is not a folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".spurbench-write-probe-"):
                pass
        except OSError as exc:
            raise SpurbenchError(f"pixel cache {str(root)!r}: cannot write there ({exc.strerror or type(exc).__name__})") from None
        return cls(root, int(max_gb * 1e9))

    def entry(self, name: str, key: dict[str, Any], image_ids: list[str], shape: tuple[int, int, int]) -> PixelEntry | None:
        """The entry of ``key`` for these images of ``shape`` [3, H, W], with room made for all of it;
        None (with a note) where it alone exceeds the bound."""
        need = len(image_ids) * math.prod(shape)
        if need > self.max_bytes:
            _note(f"{self.root}: {name} needs {need / 1e9:.1f} GB, over the {self.max_bytes / 1e9:.1f} GB bound; decoding without it")
            return None
        folder = self.root / f"{slug(name)}-{stable_hash(key)}"
        manifest = folder / MANIFEST
        content = {
            "kind": KIND,
            "format": FORMAT,
            "key": json.loads(json.dumps(key, default=str)),
            "images": len(image_ids),
            "shape": list(shape),
        }
        stored = read_manifest(manifest) if manifest.exists() else None
        if manifest.exists() and stored != content:
            # a hash collision, a damaged manifest or another format: the shards' ids could not tell
            _note(f"{folder.name}: manifest unreadable or from another configuration; starting the entry over")
            shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_manifest(manifest, content)  # (re)written on every open: its mtime is the entry's last use
        except OSError as exc:  # e.g. the disk is full, or another job evicted the folder just now
            _note(f"{folder.name}: cannot open the entry ({exc.strerror or type(exc).__name__}); decoding without it")
            return None
        self._make_room(folder, need)
        return PixelEntry(folder, image_ids, shape)

    def _make_room(self, keep: Path, need: int) -> None:
        """Delete least recently used entries (never ``keep``) until they and ``need`` fit the bound."""
        entries = []
        for folder in self.root.iterdir():
            meta = read_manifest(folder / MANIFEST) if folder.is_dir() and folder != keep else None
            if meta is not None and meta.get("kind") == KIND:  # only this cache's entries, never other folders
                with contextlib.suppress(OSError):
                    entries.append(((folder / MANIFEST).stat().st_mtime, folder, _size(folder)))
        used = sum(size for _, _, size in entries)
        for _, folder, size in sorted(entries):
            if used + need <= self.max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            used -= size
            _note(f"evicted {folder.name} ({size / 1e9:.2f} GB, least recently used) to stay under {self.max_bytes / 1e9:.1f} GB")


class _Rows:
    """Rows pulled from an iterator of batches, ``n`` at a time, whatever the batches' size."""

    def __init__(self, batches: Iterable[torch.Tensor]):
        self.batches = iter(batches)
        self.rest: torch.Tensor | None = None

    def take(self, n: int) -> torch.Tensor:
        parts, have = [], 0
        while have < n:
            part = self.rest if self.rest is not None else next(self.batches)
            self.rest = None
            if have + part.shape[0] > n:
                part, self.rest = part[: n - have], part[n - have :]
            parts.append(part)
            have += part.shape[0]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


@dataclass
class PixelEntry:
    """One image set's uint8 inputs under one preprocessing (see the module docstring)."""

    folder: Path
    image_ids: list[str]
    shape: tuple[int, int, int]

    def _span(self, shard: int) -> range:
        return range(shard * SHARD_IMAGES, min((shard + 1) * SHARD_IMAGES, len(self.image_ids)))

    def _spec(self, shard: int) -> ShardSpec:
        span = self._span(shard)
        return ShardSpec("pixels", self.image_ids[span.start : span.stop], torch.uint8, (len(span), *self.shape))

    def _header_state(self, shard: int) -> str:
        """'ok', 'missing', or why the shard's header cannot be trusted (its data is checked on use)."""
        return _why(read_shard(self.folder, shard, self._spec(shard), data=False))

    def _load(self, shard: int) -> torch.Tensor | str:
        """The shard's pixels, or why they cannot be used (damaged, or removed by another job)."""
        read = read_shard(self.folder, shard, self._spec(shard))
        return read.tensor if read.problem is None and read.tensor is not None else _why(read)

    def _write(self, shard: int, pixels: torch.Tensor) -> None:
        try:
            write_shard(self.folder, shard, "pixels", self._spec(shard).ids, pixels)
        except (OSError, SafetensorError) as exc:  # disk full, or the entry evicted by another job: go on uncached
            _note(f"{self.folder.name}: cannot write shard {shard} ({' '.join(str(exc).split())[:200]}); going on without it")

    def batches(self, positions: list[int], batch_size: int, decode: Decode) -> Iterator[torch.Tensor]:
        """uint8 batches [batch_size, 3, H, W] of the images at ``positions`` (ascending), cut exactly as a
        DataLoader over them would cut them: cached shards are read, the others decoded (``decode``, one
        call for all of them, so its loader workers run ahead) and written."""
        by_shard: dict[int, list[int]] = {}
        for p in positions:
            by_shard.setdefault(p // SHARD_IMAGES, []).append(p)
        stale = []
        for shard in by_shard:
            state = self._header_state(shard)
            if state != "ok":
                stale.append(shard)
                if state != "missing":
                    _note(f"{self.folder.name}: shard {shard} {state}; decoding it again")
        decoded = _Rows(decode([p for s in stale for p in self._span(s)]) if stale else ())
        pending: torch.Tensor | None = None
        for shard, wanted in by_shard.items():
            span = self._span(shard)
            if shard in stale:
                pixels = decoded.take(len(span))
                self._write(shard, pixels)
            else:
                loaded = self._load(shard)
                if isinstance(loaded, str):
                    _note(f"{self.folder.name}: shard {shard} {loaded}; decoding it again")
                    loaded = _Rows(decode(list(span))).take(len(span))
                    self._write(shard, loaded)
                pixels = loaded
            rows = pixels if len(wanted) == len(span) else pixels[[p - span.start for p in wanted]]
            pending = rows if pending is None or not pending.shape[0] else torch.cat([pending, rows])
            while pending.shape[0] >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending is not None and pending.shape[0]:
            yield pending


__all__ = ["DEFAULT_GB", "SHARD_IMAGES", "PixelCache", "PixelEntry"]
