"""The one store of tensors in numbered safetensors shards, shared by the feature cache and the pixel cache.

An entry is a folder holding ``manifest.json`` (a JSON object; what goes in it is the cache's own
business) and shards ``shard-NNNNN.safetensors``. A shard holds one named tensor whose rows belong to
the images listed in its metadata (``image_ids``, JSON), with the sha256 of the tensor's bytes
(``sha256``). Shards and manifests are written atomically (``files.atomic_path``): a reader, a resumed
run or a concurrent job sees a whole file or none.

A shard is trusted only through :func:`read_shard`: it counts if it lists exactly the expected images,
has the expected dtype and shape, and its bytes match the digest recorded when it was written (a
flipped bit is caught, not used). Anything else comes back as a :class:`ShardRead` saying why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from spurbench.files import atomic_path

MANIFEST = "manifest.json"

# safetensors' dtype codes (a header read names the dtype by its code, without loading the data)
_DTYPE_CODES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "U8": torch.uint8,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}

Problem = Literal["missing", "unreadable", "other images", "other layout", "damaged"]


@dataclass(frozen=True)
class ShardSpec:
    """What one shard must hold: the tensor ``tensor`` of ``dtype`` and ``shape`` whose rows are ``ids``."""

    tensor: str
    ids: list[str]
    dtype: torch.dtype
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ShardRead:
    """A checked read: ``problem`` None and ``why`` "ok" for a shard that can be trusted (with its
    ``tensor`` where the data was read), else the problem and its words for a note."""

    problem: Problem | None
    why: str
    tensor: torch.Tensor | None = None


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.safetensors"


def tensor_digest(tensor: torch.Tensor) -> str:
    """The sha256 of a tensor's bytes in row-major order (its buffer is hashed in place, not copied)."""
    return hashlib.sha256(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data).hexdigest()


def write_shard(folder: Path, index: int, tensor_name: str, ids: list[str], tensor: torch.Tensor) -> None:
    """Write shard ``index`` of ``folder`` atomically: ``tensor`` under ``tensor_name``, its rows' ``ids``
    and its digest in the metadata. Raises what the disk raises (OSError, SafetensorError)."""
    tensor = tensor.contiguous()
    with atomic_path(shard_path(folder, index)) as tmp:
        save_file({tensor_name: tensor}, str(tmp), metadata={"image_ids": json.dumps(ids), "sha256": tensor_digest(tensor)})


def read_shard(folder: Path, index: int, spec: ShardSpec, data: bool = True) -> ShardRead:
    """Shard ``index`` of ``folder``, checked against ``spec``: its ids, dtype and shape and, where
    ``data`` is read, its bytes against its digest. ``data=False`` reads the header only (cheap: which
    shards look usable), and its verdict still needs the checked read with data before use."""
    path = shard_path(folder, index)
    if not path.exists():
        return ShardRead("missing", "missing")
    tensor: torch.Tensor | None = None
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            ids = json.loads(meta["image_ids"])
            if data:
                tensor = handle.get_tensor(spec.tensor)
                dtype: torch.dtype | str = tensor.dtype
                shape = tuple(tensor.shape)
            else:
                part = handle.get_slice(spec.tensor)
                dtype = _DTYPE_CODES.get(part.get_dtype(), part.get_dtype())
                shape = tuple(part.get_shape())
    except Exception as exc:  # unreadable header, missing tensor or metadata, truncated file, vanished meanwhile, ...
        return ShardRead("unreadable", f"unreadable ({type(exc).__name__})")
    if ids != spec.ids:
        return ShardRead("other images", "lists other images")
    if dtype != spec.dtype or shape != spec.shape:
        expected = str(spec.dtype).removeprefix("torch.")
        return ShardRead("other layout", f"has shape {shape} {dtype}, expected {spec.shape} {expected}")
    if tensor is not None and meta.get("sha256") != tensor_digest(tensor):
        return ShardRead("damaged", "damaged (its data does not match its digest)")
    return ShardRead(None, "ok", tensor)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """An entry's manifest, or None where it is absent, unreadable or not a JSON object."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def write_manifest(path: Path, content: dict[str, Any]) -> None:
    """Write an entry's manifest atomically (values JSON cannot hold are written as their str)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, default=str, indent=1))


__all__ = [
    "MANIFEST",
    "Problem",
    "ShardRead",
    "ShardSpec",
    "read_manifest",
    "read_shard",
    "shard_path",
    "tensor_digest",
    "write_manifest",
    "write_shard",
]
