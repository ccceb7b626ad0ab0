"""Reading parquet shards, the one way: memory-mapped through ``datasets`` (its Arrow cache lives in the
spurbench cache), so that thousands of image blobs are never all held in memory, with one-line errors."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from PIL import Image

from spurbench.cache import make_cache_dir
from spurbench.errors import DataError


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence datasets' per-load progress bars (one line per shard would swamp the CLI output)."""
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.utils.enable_progress_bars()


def datasets_cache_dir() -> str:
    """Where ``datasets`` keeps its memory-mapped Arrow copies of parquet shards we load (created)."""
    return str(make_cache_dir("hf-datasets"))


def read_shard(shard: Path, source: str, columns: Sequence[str], filters: list[tuple[str, str, Any]] | None = None) -> pa.Table:
    """The Arrow table of one parquet shard, checked to have ``columns``; ``filters`` (pyarrow's) keep only
    matching rows out of the Arrow cache. ``source`` names the shard in errors."""
    try:
        with quiet_datasets():
            table = datasets.Dataset.from_parquet(str(shard), cache_dir=datasets_cache_dir(), filters=filters).data.table
    except Exception as exc:  # pyarrow / datasets raise many types for damaged parquet
        msg = (str(exc).strip().splitlines() or [""])[0]
        raise DataError(f"{source}: cannot read shard {shard.name}: {type(exc).__name__}: {msg}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"{source}: shard {shard.name} lacks column(s) {', '.join(missing)}")
    return table


def image_bytes(table: pa.Table, row: int) -> bytes | None:
    """The bytes of one row of a ``datasets.Image`` struct column named ``image``."""
    return table.column("image")[row]["bytes"].as_py()


def bytes_loader(table: pa.Table, row: int) -> Callable[[], Image.Image]:
    """A lazy loader of one row of an Arrow table's ``image`` struct column (``BenchmarkImage.loader``)."""

    def load() -> Image.Image:
        data = image_bytes(table, row)
        if data is None:
            raise DataError("image row has no bytes")
        return Image.open(io.BytesIO(data))

    return load
