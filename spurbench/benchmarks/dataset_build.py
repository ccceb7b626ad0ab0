"""The on-disk format of the Spurious ImageNet negatives, and how to build, publish and fetch it.

Two layouts exist:

* **upstream** -- the ``images_100_classes.zip`` of YanNeu/spurious_imagenet: one folder per
  (class, spurious component) holding that pair's 75 OpenImages images. The upstream loader
  (``dataset/spurious_dataset.py: SpuriousDataset``) reads the ImageNet class index from the *third*
  ``_``-separated token of the folder name and the component id from the *last* token; top-level
  files (the zip ships ``images/timestamp.txt``) are ignored.
* **built** -- what ``build_from_upstream`` writes and ``spurbench dataset build --push`` publishes:
  ``data/test-XXXXX-of-YYYYY.parquet`` shards whose ``image`` column is a ``datasets.Image`` struct
  ``{"bytes", "path"}`` (the original JPEG/PNG bytes, never re-encoded), ``README.md`` (dataset
  card) and ``spurbench.json`` (checksum, counts). Both record the same content checksum.

The content checksum (``content_checksum``) is the one definition used at build and at load time:
sha256 over the sorted ``(image_id, sha256(image bytes))`` pairs, so it is independent of shard
layout, row order and parquet encoding, and a local upstream copy and a Hub build of the same
images get the same value.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from spurbench.errors import AccessError, ChecksumMismatchError, DataError

FORMAT_VERSION = 1
SPLIT = "test"  # an evaluation-only set: one split
META_FILE = "spurbench.json"
CARD_FILE = "README.md"
SHARD_GLOB = "data/*.parquet"
DEFAULT_SHARD_SIZE = 500  # ~7500 images -> 15 shards of a few tens of MB each
# torchvision's IMG_EXTENSIONS (what upstream's default_loader decodes); other files are skipped.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_JUNK_DIRS = {"__MACOSX"}  # zip artefacts, never class folders
_CHECKSUM_LINE = re.compile(r"content checksum[^`]*`(sha256:[0-9a-f]{64})`", re.IGNORECASE)

CITATION = """@inproceedings{neuhaus2023spurious,
  title={Spurious Features Everywhere -- Large-Scale Detection of Harmful Spurious Features in ImageNet},
  author={Neuhaus, Yannic and Augustin, Maximilian and Boreiko, Valentyn and Hein, Matthias},
  booktitle={Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year={2023}
}"""


# --------------------------------------------------------------------------- checksum


def content_checksum(items: Iterable[tuple[str, bytes]]) -> str:
    """``sha256:<hex>`` over the sorted ``(image_id, sha256(image_bytes))`` pairs.

    Order-independent on purpose: shard boundaries and row order are not content.
    A duplicate image_id is a DataError (it would make the set ambiguous).
    """
    return checksum_from_digests((image_id, hashlib.sha256(data).hexdigest()) for image_id, data in items)


def checksum_from_digests(items: Iterable[tuple[str, str]]) -> str:
    """``content_checksum`` from precomputed ``(image_id, sha256 hexdigest)`` pairs (lets callers stream)."""
    digests: dict[str, str] = {}
    for image_id, digest in items:
        if image_id in digests:
            raise DataError(f"duplicate image_id {image_id!r} in Spurious ImageNet data")
        digests[image_id] = digest
    outer = hashlib.sha256()
    for image_id in sorted(digests):
        outer.update(f"{image_id}\t{digests[image_id]}\n".encode())
    return f"sha256:{outer.hexdigest()}"


def image_id_for(class_index: int, component: int, file_name: str) -> str:
    """Stable id of one negative; identical for the upstream folder and the built dataset."""
    return f"spurious/{class_index}/{component}/{file_name}"


# --------------------------------------------------------------------------- upstream layout


@dataclass(frozen=True)
class UpstreamImage:
    class_index: int
    component: int
    file_name: str
    path: Path

    @property
    def image_id(self) -> str:
        return image_id_for(self.class_index, self.component, self.file_name)


def parse_folder_name(name: str) -> tuple[int, int] | None:
    """``(class_index, component)`` from an upstream folder name, or None if it does not parse.

    Same rule as upstream's SpuriousDataset: third ``_`` token = class, last token = component.
    We additionally require >= 4 tokens (so class and component are distinct tokens) and a valid
    ImageNet-1k index, so a stray folder is reported instead of silently mislabelled.
    """
    tokens = name.split("_")
    if len(tokens) < 4:
        return None
    try:
        class_index, component = int(tokens[2]), int(tokens[-1])
    except ValueError:
        return None
    if not 0 <= class_index < 1000 or component < 0:
        return None
    return class_index, component


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in _JUNK_DIRS


def _class_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and _visible(d))


def find_upstream_root(path: Path) -> Path:
    """The folder holding the class folders: ``path`` itself, or its ``images/`` (the zip's top folder)."""
    folders = _class_folders(path)
    if not any(parse_folder_name(d.name) for d in folders) and (path / "images").is_dir():
        return path / "images"
    return path


def scan_upstream(src_dir: str | Path) -> list[UpstreamImage]:
    """All images of an upstream-layout folder, sorted by (class, component, file name)."""
    path = Path(src_dir).expanduser()
    if not path.exists():
        raise DataError(f"Spurious ImageNet data dir {path} does not exist")
    if not path.is_dir():
        raise DataError(f"Spurious ImageNet data dir {path} is not a directory")
    root = find_upstream_root(path)
    folders = _class_folders(root)
    if not folders:
        raise DataError(
            f"{root}: no class folders found (expected one folder per (class, component) "
            f"named like spurious_class_<imagenet index>_..._<component>)"
        )
    images: list[UpstreamImage] = []
    for folder in folders:
        parsed = parse_folder_name(folder.name)
        if parsed is None:
            raise DataError(
                f"{folder}: folder name does not parse as Spurious ImageNet "
                f"(third '_'-separated token = ImageNet class index 0-999, last token = component id)"
            )
        class_index, component = parsed
        files = sorted(
            f for f in folder.iterdir() if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DataError(f"{folder}: no image files in this class folder")
        images.extend(UpstreamImage(class_index, component, f.name, f) for f in files)
    images.sort(key=lambda im: (im.class_index, im.component, im.file_name))
    return images


def read_upstream_timestamp(src_dir: str | Path) -> str | None:
    """Upstream's ``images/timestamp.txt`` (its eval code records it as the dataset version)."""
    path = Path(src_dir).expanduser()
    for candidate in (path / "timestamp.txt", find_upstream_root(path) / "timestamp.txt"):
        if candidate.is_file():
            text = candidate.read_text(errors="replace").strip().splitlines()
            return text[0].strip() if text else None
    return None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def upstream_checksum(images: list[UpstreamImage]) -> str:
    return content_checksum((im.image_id, _read_file(im.path)) for im in images)


# --------------------------------------------------------------------------- built layout


def is_built_dir(path: Path) -> bool:
    """A built dataset folder: parquet shards under data/ plus a card or spurbench.json."""
    return any(path.glob(SHARD_GLOB)) and ((path / META_FILE).is_file() or (path / CARD_FILE).is_file())


def shard_paths(path: Path) -> list[Path]:
    return sorted(path.glob(SHARD_GLOB))


def recorded_checksums(path: Path) -> dict[str, str]:
    """Checksums recorded in a built folder: ``{"spurbench.json": ..., "README.md": ...}`` (those present)."""
    found: dict[str, str] = {}
    meta_file = path / META_FILE
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{meta_file}: not valid JSON ({exc})") from None
        if isinstance(meta, dict) and isinstance(meta.get("checksum"), str):
            found[META_FILE] = meta["checksum"]
    card = path / CARD_FILE
    if card.is_file():
        match = _CHECKSUM_LINE.search(card.read_text(errors="replace"))
        if match:
            found[CARD_FILE] = match.group(1)
    return found


def read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META_FILE
    if not meta_file.is_file():
        return {}
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta_file}: not valid JSON ({exc})") from None
    return meta if isinstance(meta, dict) else {}


def verify_checksum(path: Path, actual: str, source: str) -> str:
    """Compare ``actual`` with every checksum recorded in ``path``; return it or raise ChecksumMismatchError."""
    recorded = recorded_checksums(path)
    if not recorded:
        raise DataError(f"{source}: no content checksum recorded in {META_FILE} or {CARD_FILE}")
    for where, expected in recorded.items():
        if expected != actual:
            raise ChecksumMismatchError(
                f"{source}: content checksum mismatch: {where} records {expected}, images hash to {actual}"
            )
    return actual


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence datasets' per-load progress bars (one line per shard would swamp the CLI output)."""
    import datasets

    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.utils.enable_progress_bars()


def datasets_cache_dir() -> str:
    """Where ``datasets`` keeps its memory-mapped Arrow copies of parquet shards we load."""
    from spurbench.cache import cache_dir

    return str(cache_dir("hf-datasets"))


def features():
    """The ``datasets.Features`` of a built shard (the Hub viewer and ``load_dataset`` read these)."""
    import datasets

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
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            # A full decode, once, at build time: verify() reads only the header and structure, so a
            # truncated JPEG would be packaged and fail (or be silently padded) at evaluation time.
            im.load()
            return im.size
    except Exception as exc:  # PIL raises many types for non-image data
        raise DataError(f"corrupt image {path}: {type(exc).__name__}: {exc}") from None


def build_from_upstream(
    src_dir: str | Path, out_dir: str | Path, shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False
) -> BuildInfo:
    """Turn an upstream-layout folder into parquet shards + dataset card + spurbench.json.

    Image bytes are copied verbatim (no re-encoding), so the checksum of the build equals the
    checksum of the upstream folder. Every image is header-checked; a corrupt one is a DataError.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spurbench.benchmarks.imagenet_val import imagenet_class_names

    if shard_size < 1:
        raise DataError(f"shard size must be >= 1, got {shard_size}")
    images = scan_upstream(src_dir)
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"output dir {out} is not empty (pass overwrite=True / --overwrite to replace it)")
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True, exist_ok=True)

    names = imagenet_class_names()
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
            rows["class_name"].append(names[im.class_index])
            rows["component"].append(im.component)
            rows["image_id"].append(im.image_id)
            rows["file_name"].append(im.file_name)
        rel = f"data/{SPLIT}-{s:05d}-of-{num_shards:05d}.parquet"
        pq.write_table(pa.Table.from_pydict(rows, schema=schema), out / rel)
        shard_files.append(rel)
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
    counts = {k: 0 for k in class_components}
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
    """content_checksum of the rows of built parquet shards (reads only the image and id columns)."""
    import pyarrow.parquet as pq

    def rows() -> Iterator[tuple[str, bytes]]:
        for shard in shards:
            try:
                table = pq.read_table(shard, columns=["image_id", "image"])
            except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
                raise DataError(f"cannot read parquet shard {shard}: {type(exc).__name__}: {exc}") from None
            ids = table.column("image_id").to_pylist()
            blobs = table.column("image").combine_chunks().field("bytes").to_pylist()
            yield from zip(ids, blobs)

    return content_checksum(rows())


def dataset_card(info: BuildInfo, counts: dict[int, int], names: list[str]) -> str:
    """README.md: YAML front matter the Hub reads (configs, license, task) + provenance and checksum."""
    import yaml

    front = {
        "pretty_name": "Spurious ImageNet",
        "license": "cc-by-2.0",
        "task_categories": ["image-classification"],
        "size_categories": ["1K<n<10K"],
        "tags": ["spurious-correlations", "robustness", "imagenet", "benchmark"],
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": "data/test-*.parquet"}]}],
    }
    rows = "\n".join(
        f"| {k} | {names[k]} | {', '.join(str(c) for c in info.class_components[k])} | {counts[k]} |"
        for k in sorted(info.class_components)
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


# --------------------------------------------------------------------------- publish / fetch


def hub_error(exc: Exception, what: str, hint: str = "") -> Exception:
    """Map a huggingface_hub exception to a one-line SpurbenchError (or return it unchanged if not ours)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, LocalEntryNotFoundError) and isinstance(exc.__cause__, HfHubHTTPError):
        # snapshot_download wraps some HTTP failures (403, 5xx) into "not in cache": report the real one
        exc = exc.__cause__
    tail = f"; {hint}" if hint else ""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, GatedRepoError):
        return AccessError(f"{what} is gated and this token has no access: accept its terms on the Hub{tail}")
    if isinstance(exc, RepositoryNotFoundError):
        return DataError(f"{what} not found on the Hub (or private and no valid token){tail}")
    if isinstance(exc, RevisionNotFoundError):
        return DataError(f"{what}: revision not found on the Hub{tail}")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return AccessError(f"{what}: Hub refused access (HTTP {status}): check your token{tail}")
        return DataError(f"{what}: Hub error: {first}{tail}")
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return DataError(
            f"{what} is not in the local Hub cache and the Hub cannot be reached (HF_HUB_OFFLINE=1 or no connection){tail}"
        )
    return exc


def snapshot(repo_id: str, revision: str | None, token: str | bool | None, hint: str = "", **kwargs: Any) -> Path:
    """``snapshot_download`` of a dataset repo with Hub errors mapped to one-line SpurbenchErrors."""
    import huggingface_hub

    what = f"Hub dataset {repo_id}@{revision or 'main'}"
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, repo_type="dataset", revision=revision, token=token, **kwargs
        )
    except Exception as exc:
        mapped = hub_error(exc, what, hint)
        if mapped is exc:
            raise
        raise mapped from None
    return Path(path)


def verify_built_dir(path: Path, source: str | None = None) -> str:
    """Recompute the checksum of a built folder and compare it with the recorded one(s)."""
    shards = shard_paths(path)
    if not shards:
        raise DataError(f"{source or path}: no parquet shards under data/")
    return verify_checksum(path, checksum_of_shards(shards), source or str(path))


def push_to_hub(out_dir: str | Path, repo_id: str, token: str | None = None, revision: str | None = None) -> str:
    """Upload a built folder to the Hub dataset repo ``repo_id``; return the commit sha.

    The folder is verified first: a build whose files no longer match its checksum is not published.
    """
    from huggingface_hub import HfApi

    path = Path(out_dir).expanduser()
    if not is_built_dir(path):
        raise DataError(f"{path} is not a built Spurious ImageNet folder (run `spurbench dataset build` first)")
    checksum = verify_built_dir(path)
    api = HfApi(token=token)
    what = f"Hub dataset {repo_id}"
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(path),
            revision=revision,
            commit_message=f"Spurious ImageNet ({checksum})",
        )
    except Exception as exc:
        mapped = hub_error(exc, what)
        if mapped is exc:
            raise
        raise mapped from None
    return getattr(commit, "oid", None) or str(commit)


def download(repo: str, revision: str | None = None, dest: str | Path | None = None, token: str | bool | None = None) -> Path:
    """Resolve ``repo@revision`` via ``snapshot_download`` (into ``dest`` if given), verify it, return the folder."""
    kwargs: dict[str, Any] = {"local_dir": str(Path(dest).expanduser())} if dest is not None else {}
    path = snapshot(repo, revision, token, **kwargs)
    verify_built_dir(path, f"{repo}@{revision or 'main'}")
    return path
