"""An unlabelled image pool for ``spurbench mine``: a local folder of images, read recursively, or a
Hub dataset repo (``hf://ORG/NAME[@REVISION]``) through the one Hub module: its image files as a
folder, or its parquet shards' ``image`` column (the ``datasets.Image`` layout), one pool image per row.

Every file with an image extension (torchvision's, as the upstream loaders use) under the folder is a
pool image, its id its path relative to the folder in POSIX form. Each is checked once with PIL
(``Image.verify``, header and structure, no full decode): files that do not pass are skipped and
named, so one broken download does not stop a mining run. The pool's revision is a digest of the
sorted (relative path, size, mtime) triples: the feature cache is reused while the folder is
unchanged, and recomputed when a file is added, removed or rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from stat import S_ISLNK, S_ISREG

from PIL import Image

from spurbench.benchmarks import BENCHMARKS, MinesPools, get_benchmark, require
from spurbench.benchmarks.base import Benchmark, BenchmarkImage
from spurbench.benchmarks.folders import IMAGE_EXTENSIONS, inside, reading_root
from spurbench.benchmarks.parquet import image_bytes, read_shard
from spurbench.cache import make_cache_dir
from spurbench.errors import DataError, SpurbenchError
from spurbench.files import atomic_path, check_inside
from spurbench.hub import check_repo_id, snapshot
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table

POOL_LABEL_SPACE = "pool"  # pool images have no label; class_index -1


@dataclass
class Pool:
    """The pool's images as a (label-free) benchmark, their files when on disk, and what was skipped."""

    benchmark: Benchmark
    source: str  # the folder, or the generator / Hub repo it came from
    files: dict[str, Path] = field(default_factory=dict)  # image id -> file (empty for generated pools)
    unreadable: list[str] = field(default_factory=list)  # ids of files that failed the check, skipped
    spec: str | None = None  # the --pool value that opens it again (a benchmark name, hf://...); None: a local folder


# A pool's images are taken whole (resized to the model's size, no crop): they are candidates for
# spurious-only images, scored as a benchmark's spurious-only images are.
POOL_PROTOCOLS = protocol_table(
    fixed_paper(1.0, by="spurbench's mining pools: each image's short side resized to the model's size"), MODEL_TRANSFORM
)


def _image_from_bytes(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))  # a new stream per call: the image may be opened more than once


def _readable(path: Path | io.BytesIO) -> bool:
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # PIL raises many types for non-image or truncated data
        return False


def _read_memo(path: Path) -> dict[str, list]:
    """Earlier readability checks of a folder's files: id -> [size, mtime_ns, readable] (none: {})."""
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _scan(root: Path, within: Path) -> list[tuple[str, Path, int, int]]:
    """(id, path, size, mtime_ns) of every image file under ``root``, sorted by id; hidden files and
    folders skipped. ``os.walk`` with its cached directory entries: a second scan of a large pool
    costs little more than listing it.

    A link (to a file or a folder, at any level) whose real path leaves ``within`` is refused in one
    line: a shared or downloaded pool must not make spurbench read, cache and copy files from elsewhere
    on the machine. ``os.walk`` does not descend into linked folders, so only links need resolving."""
    found = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in subdirs:
            if os.path.islink(os.path.join(directory, name)):
                check_inside(within, Path(directory, name), "a folder of the pool")
        prefix = Path(directory).relative_to(root).as_posix()
        for name in names:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            path = Path(directory, name)
            try:
                if S_ISLNK(path.lstat().st_mode):
                    check_inside(within, path, "a pool file")
                stat = path.stat()
            except OSError:  # vanished between listing and stat (or a dangling link)
                continue
            if S_ISREG(stat.st_mode):
                found.append((name if prefix == "." else f"{prefix}/{name}", path, stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=lambda entry: entry[0])


def folder_pool(folder: str | Path, within: str | Path | None = None) -> Pool:
    """Every image under ``folder`` (recursive, hidden files and folders skipped); no file or folder of
    it may lead out of ``within`` (default: ``folder``, see ``folders.reading_root``)."""
    root = Path(folder)
    if not root.is_dir():
        raise SpurbenchError(f"--pool {folder}: not a folder (give a folder of images, or a benchmark that generates a pool)")
    found = _scan(root, Path(within) if within is not None else reading_root(root))
    if not found:
        raise SpurbenchError(f"--pool {folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) under it")
    identity = hashlib.sha256()
    images, files, unreadable = [], {}, []
    memo_path = make_cache_dir("pool-scans") / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32]}.json"
    memo = _read_memo(memo_path)
    checked: dict[str, list] = {}
    for image_id, path, size, mtime_ns in found:
        identity.update(f"{image_id}\t{size}\t{mtime_ns}\n".encode())
        seen = memo.get(image_id)
        readable = seen[2] if seen and seen[:2] == [size, mtime_ns] else _readable(path)
        checked[image_id] = [size, mtime_ns, readable]
        if not readable:
            unreadable.append(image_id)
            continue
        files[image_id] = path
        images.append(BenchmarkImage(image_id, -1, "negative", None, str(path), partial(Image.open, path)))
    if checked != memo:
        with atomic_path(memo_path) as tmp:
            tmp.write_text(json.dumps(checked))
    if not images:
        raise DataError(f"--pool {folder}: none of its {len(found)} image files can be read (e.g. {unreadable[0]})")
    revision = identity.hexdigest()
    bench = Benchmark(
        f"pool:{root.resolve().name}",
        POOL_LABEL_SPACE,
        [],
        images,
        repo=str(root.resolve()),
        revision=revision,
        checksum=revision,
        protocols=POOL_PROTOCOLS,
    )
    return Pool(bench, str(root.resolve()), files, unreadable)


HUB_PREFIX = "hf://"


def _parquet_pool(root: Path, source: str, revision: str) -> Pool:
    """One pool image per row of the shards' ``image`` column; ids ``<shard path>/<row>``."""
    images, unreadable = [], []
    for shard in sorted(root.rglob("*.parquet")):
        inside(root, shard, "a pool shard")
        rel = shard.relative_to(root).as_posix()
        table = read_shard(shard, source, ["image"])
        for row in range(table.num_rows):
            data = image_bytes(table, row)
            image_id = f"{rel}/{row}"
            if not data or not _readable(io.BytesIO(data)):
                unreadable.append(image_id)
                continue
            images.append(BenchmarkImage(image_id, -1, "negative", None, f"{source} {image_id}", partial(_image_from_bytes, data)))
    if not images:
        raise DataError(f"--pool {source}: no readable image rows in its parquet shards")
    bench = Benchmark(
        f"pool:{source[len(HUB_PREFIX) :]}",
        POOL_LABEL_SPACE,
        [],
        images,
        repo=source,
        revision=revision,
        checksum=revision,
        protocols=POOL_PROTOCOLS,
    )
    return Pool(bench, source, {}, unreadable, spec=source)


def hub_pool(spec: str, token: str | bool | None = None) -> Pool:
    """``hf://ORG/NAME[@REVISION]``: a Hub dataset repo's images (files, or parquet ``image`` rows);
    the revision is the snapshot's commit, so the feature cache follows the repo."""
    repo_id, _, revision = spec[len(HUB_PREFIX) :].partition("@")
    check_repo_id(repo_id, "--pool")
    root = snapshot(repo_id, repo_type="dataset", revision=revision or None, token=token, hint="pass --pool DIR for a local folder")
    commit = root.name  # snapshots/<commit sha>
    if any(root.rglob("*.parquet")):
        return _parquet_pool(root, spec, commit)
    pool = folder_pool(root)
    pool.benchmark.name, pool.benchmark.repo, pool.source, pool.spec = f"pool:{repo_id}", spec, spec, spec
    pool.benchmark.revision = pool.benchmark.checksum = commit
    return pool


def resolve_pool(pool: str) -> Pool:
    """``--pool``: a local folder of images, ``hf://ORG/NAME[@REV]``, or a benchmark that generates a pool."""
    if pool.startswith(HUB_PREFIX):
        return hub_pool(pool)
    if not Path(pool).is_dir() and pool in BENCHMARKS.names():
        plugin = get_benchmark(pool)
        bench, _ = require(plugin, MinesPools).mining_pool(plugin.parse_options({}))
        return Pool(bench, f"benchmark {pool} ({bench.name}, {bench.revision})", spec=pool)
    return folder_pool(pool)


__all__ = ["HUB_PREFIX", "POOL_LABEL_SPACE", "Pool", "folder_pool", "hub_pool", "resolve_pool"]
