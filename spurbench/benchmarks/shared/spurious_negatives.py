"""Spurious ImageNet (Neuhaus et al., ICCV 2023): 100 ImageNet classes x 75 negatives.

Negatives are OpenImages images that show only a class's harmful spurious feature (one neural PCA
component per class), never the class object; positives are the ImageNet validation images of the
same classes. A model that does not rely on the feature separates the two by its class probability.

Where the negatives come from:

* ``data_dir`` -- a local folder, either the upstream ``images_100_classes.zip`` layout (one
  folder per (class, component); see ``layout``) or a local copy of the built dataset
  (``data/*.parquet`` + ``README.md`` / ``spurbench.json``). The layout is detected.
* otherwise the Hub dataset ``dataset_repo`` (default ``DEFAULT_DATASET_REPO``) at
  ``revision``, resolved with ``huggingface_hub.snapshot_download`` (so ``HF_HUB_OFFLINE=1``
  works from the cache) and read with ``datasets``.

Either way the content checksum is recomputed and, for built data, compared with the recorded one
(ChecksumMismatchError on mismatch). Positives come from ``spurbench.benchmarks.imagenet.val`` (local folder or the gated
ILSVRC/imagenet-1k); without either the load fails with AccessError -- never a benchmark without
positives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from spurbench.benchmarks.data import BenchmarkImage
from spurbench.benchmarks.parquet import bytes_loader, image_bytes, read_shard
from spurbench.benchmarks.shared.spurious_layout import (
    checksum_from_digests,
    image_id_for,
    is_built_dir,
    read_meta,
    read_upstream_timestamp,
    scan_upstream,
    shard_paths,
    upstream_checksum,
    verify_checksum,
)
from spurbench.errors import DataError
from spurbench.hub import snapshot

# Where `spurbench dataset build --push` publishes the parquet build of the upstream zip.
# Not verified to exist from this sandbox (no network): until it is published, use --data-dir.
DEFAULT_DATASET_REPO = "spurbench/spurious-imagenet"
# The published commit is unknown here, so the default follows the branch; the resolved commit sha
# (the snapshot folder name) is recorded in Benchmark.revision so results stay traceable.
DEFAULT_REVISION = "main"
# Published dataset revisions (commit sha of the Hub dataset repo) -> content checksum, which
# `spurbench leaderboard verify` accepts. Empty until the dataset is published with
# `spurbench dataset build --push` (it prints both); results on other revisions are refused.
KNOWN_REVISIONS: dict[str, str] = {}
EXPECTED_CLASSES = 100
EXPECTED_PER_CLASS = 75
REQUIRED_COLUMNS = ("image", "class_index", "component", "image_id", "file_name")
_DATA_DIR_HINT = "or pass --data-dir DIR (the unpacked upstream images_100_classes.zip)"


@dataclass
class Negatives:
    images: list[BenchmarkImage]
    components: dict[int, tuple[int, ...]]  # class -> all its components (before any limit)
    repo: str
    revision: str | None
    checksum: str
    extra: dict[str, Any] = field(default_factory=dict)


def _negative(class_index: int, component: int, file_name: str, origin: str, loader) -> BenchmarkImage:
    return BenchmarkImage(
        image_id=image_id_for(class_index, component, file_name),
        class_index=class_index,
        role="negative",
        component=component,
        origin=origin,
        loader=loader,
    )


def _cap(images: list[BenchmarkImage], limit: int | None) -> list[BenchmarkImage]:
    """At most ``limit`` negatives per class, keeping the (component, file name) order."""
    if limit is None:
        return images
    kept: list[BenchmarkImage] = []
    seen: dict[int, int] = {}
    for im in images:
        if seen.get(im.class_index, 0) < limit:
            kept.append(im)
            seen[im.class_index] = seen.get(im.class_index, 0) + 1
    return kept


def _components(rows: list[tuple[int, int]]) -> dict[int, tuple[int, ...]]:
    comps: dict[int, set[int]] = {}
    for k, c in rows:
        comps.setdefault(k, set()).add(c)
    return {k: tuple(sorted(v)) for k, v in sorted(comps.items())}


def _file_loader(path: Path):
    return lambda: Image.open(path)


def load_upstream_negatives(path: Path, limit: int | None = None) -> Negatives:
    """Negatives from the upstream folder layout; the checksum is computed from the files."""
    scanned = scan_upstream(path)
    checksum = upstream_checksum(scanned)
    images = [_negative(im.class_index, im.component, im.file_name, str(im.path), _file_loader(im.path)) for im in scanned]
    return Negatives(
        images=_cap(images, limit),
        components=_components([(im.class_index, im.component) for im in scanned]),
        repo=str(path),
        revision=None,
        checksum=checksum,
        extra={"negatives_layout": "upstream-folders", "upstream_timestamp": read_upstream_timestamp(path)},
    )


def load_built_negatives(path: Path, source: str, limit: int | None = None) -> Negatives:
    """Negatives from a built folder (local copy or Hub snapshot); verifies the recorded checksum.

    ``source`` names the data in errors and origins: ``repo@commit`` for the Hub, the path locally.
    """
    shards = shard_paths(path)
    if not shards:
        raise DataError(f"{source}: no parquet shards under data/")
    rows: list[tuple[int, int, str, str, Any, int]] = []  # class, component, file, origin, table, row
    digests: list[tuple[str, str]] = []  # hash as we go: never hold all image bytes at once
    for shard in shards:
        rel = shard.relative_to(path).as_posix()
        table = read_shard(shard, source, REQUIRED_COLUMNS)
        ids, classes, comps, files = (table.column(c).to_pylist() for c in ("image_id", "class_index", "component", "file_name"))
        for n, (image_id, k, c, f) in enumerate(zip(ids, classes, comps, files)):
            if image_id != image_id_for(k, c, f):
                # the checksum covers image_id only: a row whose labels disagree with it is tampered
                raise DataError(f"{source}: {rel}#row{n}: image_id {image_id!r} disagrees with class {k} / component {c}")
            digests.append((image_id, hashlib.sha256(image_bytes(table, n) or b"").hexdigest()))
            rows.append((k, c, f, f"{source}:{rel}#row{n}", table, n))
    checksum = verify_checksum(path, checksum_from_digests(digests), source)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    images = [_negative(k, c, f, origin, bytes_loader(table, n)) for k, c, f, origin, table, n in rows]
    meta = read_meta(path)
    return Negatives(
        images=_cap(images, limit),
        components=_components([(r[0], r[1]) for r in rows]),
        repo=source,
        revision=None,
        checksum=checksum,
        extra={"negatives_layout": "parquet", "upstream_timestamp": meta.get("upstream_timestamp")},
    )


def load_negatives(
    data_dir: str | None, dataset_repo: str | None, revision: str | None, token: str | bool | None, limit: int | None
) -> Negatives:
    """Negatives from ``data_dir`` (layout detected) or the pinned Hub dataset."""
    if data_dir:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"Spurious ImageNet data dir {path} does not exist or is not a directory")
        if is_built_dir(path):
            return load_built_negatives(path, str(path), limit)
        if any(path.glob("data/*.parquet")):
            # parquet without a card/spurbench.json: a partial copy, whose content cannot be verified
            raise DataError(f"{path}: has data/*.parquet but no README.md or spurbench.json recording its checksum")
        return load_upstream_negatives(path, limit)
    repo = dataset_repo or DEFAULT_DATASET_REPO
    revision = revision or DEFAULT_REVISION
    folder = snapshot(repo, repo_type="dataset", revision=revision, token=token, hint=_DATA_DIR_HINT)
    commit = folder.name  # snapshot folders are named by the resolved commit sha
    negatives = load_built_negatives(folder, f"{repo}@{commit}", limit)
    negatives.repo, negatives.revision = repo, commit
    negatives.extra["requested_revision"] = revision
    return negatives
