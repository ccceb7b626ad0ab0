"""Building, publishing and fetching the Spurious ImageNet Hub dataset (the ``built`` layout of
``layout``): parquet shards of the original image bytes, a dataset card and ``spurbench.json``."""

from __future__ import annotations

import datetime as _dt
import io
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from spurbench.benchmarks.folders import inside
from spurbench.benchmarks.parquet import image_bytes, read_shard
from spurbench.benchmarks.shared.spurious_layout import (
    CARD_FILE,
    CITATION,
    DEFAULT_SHARD_SIZE,
    FORMAT_VERSION,
    META_FILE,
    SPLIT,
    UpstreamImage,
    _read_file,
    content_checksum,
    is_built_dir,
    read_upstream_timestamp,
    scan_upstream,
    shard_paths,
    verify_checksum,
)
from spurbench.errors import DataError
from spurbench.hub import commit, snapshot
from spurbench.label_spaces import class_names


def features():
    """The ``datasets.Features`` of a built shard (the Hub viewer and ``load_dataset`` read these)."""
    return datasets.Features(
        {
            "image": datasets.Image(),
            "class_index": datasets.Value("int32"),
            "class_name": datasets.Value("string"),
            "component": datasets.Value("int32"),
            "image_id": datasets.Value("string"),
            "file_name": datasets.Value("string"),
        }
    )


# --------------------------------------------------------------------------- build


@dataclass
class BuildInfo:
    out_dir: Path
    checksum: str
    num_images: int
    num_classes: int
    shards: list[str]
    class_components: dict[int, list[int]] = field(default_factory=dict)
    image_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> count: documents square / not


def _image_size(data: bytes, path: Path) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            # A full decode, once, at build time: verify() reads only the header and structure, so a
            # truncated JPEG would be packaged and fail (or be silently padded) at evaluation time.
            im.load()
            return im.size
    except Exception as exc:  # PIL raises many types for non-image data
        raise DataError(f"corrupt image {path}: {type(exc).__name__}: {exc}") from None


def write_shards(
    images: Sequence[UpstreamImage], out: Path, class_name: Callable[[int], str], shard_size: int = DEFAULT_SHARD_SIZE
) -> tuple[list[str], dict[str, int]]:
    """Write upstream-layout images as ``out/data/test-XXXXX-of-YYYYY.parquet`` shards (their bytes copied
    verbatim, each decoded once to check it); the shard paths relative to ``out`` and the image sizes
    (``"WxH"`` -> count). ``class_name`` names a class index in the ``class_name`` column."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    schema = features().arrow_schema
    num_shards = (len(images) + shard_size - 1) // shard_size
    shard_files: list[str] = []
    sizes: dict[str, int] = {}
    for s in range(num_shards):
        chunk = images[s * shard_size : (s + 1) * shard_size]
        rows: dict[str, list[Any]] = {k: [] for k in schema.names}
        for im in chunk:
            data = _read_file(im.path)
            w, h = _image_size(data, im.path)
            sizes[f"{w}x{h}"] = sizes.get(f"{w}x{h}", 0) + 1
            rows["image"].append({"bytes": data, "path": im.file_name})
            rows["class_index"].append(im.class_index)
            rows["class_name"].append(class_name(im.class_index))
            rows["component"].append(im.component)
            rows["image_id"].append(im.image_id)
            rows["file_name"].append(im.file_name)
        rel = f"data/{SPLIT}-{s:05d}-of-{num_shards:05d}.parquet"
        pq.write_table(pa.Table.from_pydict(rows, schema=schema), out / rel)
        shard_files.append(rel)
    return shard_files, sizes


def build_from_upstream(
    src_dir: str | Path, out_dir: str | Path, shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False
) -> BuildInfo:
    """Turn an upstream-layout folder into parquet shards + dataset card + spurbench.json.

    Image bytes are copied verbatim (no re-encoding), so the checksum of the build equals the
    checksum of the upstream folder. Every image is header-checked; a corrupt one is a DataError.
    """
    if shard_size < 1:
        raise DataError(f"shard size must be >= 1, got {shard_size}")
    images = scan_upstream(src_dir)
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"output dir {out} is not empty (pass overwrite=True / --overwrite to replace it)")
        shutil.rmtree(out)
    names = class_names()
    shard_files, sizes = write_shards(images, out, names.__getitem__, shard_size)
    # Hash what was written, not what was read: proves the shards read back to the same content.
    checksum = checksum_of_shards([out / f for f in shard_files])

    class_components: dict[int, list[int]] = {}
    for im in images:
        comps = class_components.setdefault(im.class_index, [])
        if im.component not in comps:
            comps.append(im.component)
    info = BuildInfo(
        out_dir=out,
        checksum=checksum,
        num_images=len(images),
        num_classes=len(class_components),
        shards=shard_files,
        class_components={k: sorted(v) for k, v in sorted(class_components.items())},
        image_sizes=dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
    )
    counts = dict.fromkeys(class_components, 0)
    for im in images:
        counts[im.class_index] += 1
    meta = {
        "format_version": FORMAT_VERSION,
        "name": "spurious-imagenet",
        "label_space": "imagenet-1k",
        "checksum": checksum,
        "checksum_definition": "sha256 over sorted lines '<image_id>\\t<sha256(image bytes)>\\n'",
        "num_images": len(images),
        "num_classes": info.num_classes,
        "images_per_class": {str(k): v for k, v in sorted(counts.items())},
        "class_components": {str(k): v for k, v in info.class_components.items()},
        "image_sizes": info.image_sizes,
        "upstream_timestamp": read_upstream_timestamp(src_dir),
        "built_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "shards": shard_files,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (out / CARD_FILE).write_text(dataset_card(info, counts, names))
    return info


def checksum_of_shards(shards: list[Path]) -> str:
    """content_checksum of the rows of built parquet shards."""

    def rows() -> Iterator[tuple[str, bytes]]:
        for shard in shards:
            table = read_shard(shard, str(shard.parent.parent), ["image_id", "image"])
            for row, image_id in enumerate(table.column("image_id").to_pylist()):
                yield image_id, image_bytes(table, row) or b""

    return content_checksum(rows())


def dataset_card(info: BuildInfo, counts: dict[int, int], names: Sequence[str]) -> str:
    """README.md: YAML front matter the Hub reads (configs, license, task) + provenance and checksum."""
    front = {
        "pretty_name": "Spurious ImageNet",
        "license": "cc-by-2.0",
        "task_categories": ["image-classification"],
        "size_categories": ["1K<n<10K"],
        "tags": ["spurious-correlations", "robustness", "imagenet", "benchmark"],
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": "data/test-*.parquet"}]}],
    }
    rows = "\n".join(
        f"| {k} | {names[k]} | {', '.join(str(c) for c in info.class_components[k])} | {counts[k]} |" for k in sorted(info.class_components)
    )
    sizes = ", ".join(f"{s} ({n})" for s, n in list(info.image_sizes.items())[:5])
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# Spurious ImageNet

Images that show only a *spurious feature* of an ImageNet class -- never the class object -- yet are
classified as that class by ImageNet models. From Neuhaus et al., "Spurious Features Everywhere --
Large-Scale Detection of Harmful Spurious Features in ImageNet", ICCV 2023
(code and original data: https://github.com/YanNeu/spurious_imagenet).
For each class, a model's reliance on the spurious feature is measured by how well its class
probability separates ImageNet validation images of the class (positives, not included here: they
come from ILSVRC2012 under its own terms) from these images (negatives).

This is a repackaging of the upstream `images_100_classes.zip` into parquet by `spurbench`:
image bytes are copied unchanged. {info.num_images} images, {info.num_classes} classes.
Image sizes (most common first): {sizes}.

## Columns

- `image`: the original image file (`datasets.Image`, bytes + original file name)
- `class_index`: ImageNet-1k class index (0-999, standard order)
- `class_name`: class name
- `component`: id of the class-wise neural PCA component that encodes the spurious feature
- `image_id`: `spurious/<class_index>/<component>/<file_name>`, stable across builds
- `file_name`: original file name in the upstream folder

## Classes

| class index | class name | spurious component(s) | images |
|---|---|---|---|
{rows}

## Provenance and licence

The images were collected by the authors from OpenImages (Kuznetsova et al., IJCV 2020): top-ranked
OpenImages images by the value of the class's spurious neural PCA component, kept when two human
labelers agreed that they show the spurious feature but not the class object and at least two of
four ImageNet classifiers predicted the class. OpenImages images are listed by their authors as
having a CC BY 2.0 licence (OpenImages annotations are CC BY 4.0); Google does not own their
copyright, and the licence of each image is that of its Flickr author -- check before redistribution
beyond research use. The upstream code repository is MIT-licensed.

## Citation

```bibtex
{CITATION}
```

## Integrity

Content checksum: `{info.checksum}`
(sha256 over the sorted lines `<image_id>\\t<sha256(image bytes)>\\n`; `spurbench` recomputes it
on every load and refuses data that does not match.)
"""


def verify_built_dir(path: Path, source: str | None = None) -> str:
    """Recompute the checksum of a built folder and compare it with the recorded one(s)."""
    shards = shard_paths(path)
    if not shards:
        raise DataError(f"{source or path}: no parquet shards under data/")
    return verify_checksum(path, checksum_of_shards(shards), source or str(path))


def push_to_hub(out_dir: str | Path, repo_id: str, token: str | None = None, revision: str | None = None) -> str:
    """Upload a built folder to the Hub dataset repo ``repo_id`` as one commit; return the commit url.

    The folder is verified first: a build whose files no longer match its checksum is not published.
    """
    path = Path(out_dir).expanduser()
    if not is_built_dir(path):
        raise DataError(f"{path} is not a built Spurious ImageNet folder (run `spurbench dataset build` first)")
    checksum = verify_built_dir(path)
    files: dict[str, Path | bytes] = {
        p.relative_to(path).as_posix(): inside(path, p, "a file to upload") for p in sorted(path.rglob("*")) if p.is_file()
    }
    return commit(repo_id, files, repo_type="dataset", message=f"Spurious ImageNet ({checksum})", token=token, branch=revision)


def download(repo: str, revision: str | None = None, dest: str | Path | None = None, token: str | bool | None = None) -> Path:
    """Resolve ``repo@revision`` via ``snapshot_download`` (into ``dest`` if given), verify it, return the folder."""
    path = snapshot(
        repo, repo_type="dataset", revision=revision, token=token, local_dir=Path(dest).expanduser() if dest is not None else None
    )
    verify_built_dir(path, f"{repo}@{revision or 'main'}")
    return path
