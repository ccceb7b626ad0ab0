"""The on-disk format of the Spurious ImageNet negatives: both layouts and the one content checksum
(shared by the ``spurious-imagenet`` and ``spurious-folder`` plugins, which import no plugin but their own).

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

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spurbench.benchmarks.folders import IMAGE_EXTENSIONS, inside
from spurbench.errors import ChecksumMismatchError, DataError

FORMAT_VERSION = 1
SPLIT = "test"  # an evaluation-only set: one split
META_FILE = "spurbench.json"
CARD_FILE = "README.md"
SHARD_GLOB = "data/*.parquet"
DEFAULT_SHARD_SIZE = 500  # ~7500 images -> 15 shards of a few tens of MB each
# torchvision's IMG_EXTENSIONS (what upstream's default_loader decodes); other files are skipped.
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


def _class_folders(root: Path, given: Path) -> list[Path]:
    return sorted(inside(given, d, "a class folder") for d in root.iterdir() if d.is_dir() and _visible(d))


def find_upstream_root(path: Path) -> Path:
    """The folder holding the class folders: ``path`` itself, or its ``images/`` (the zip's top folder)."""
    folders = _class_folders(path, path)
    if not any(parse_folder_name(d.name) for d in folders) and (path / "images").is_dir():
        return inside(path, path / "images", "its images/ folder")
    return path


def scan_upstream(src_dir: str | Path) -> list[UpstreamImage]:
    """All images of an upstream-layout folder, sorted by (class, component, file name)."""
    path = Path(src_dir).expanduser()
    if not path.exists():
        raise DataError(f"Spurious ImageNet data dir {path} does not exist")
    if not path.is_dir():
        raise DataError(f"Spurious ImageNet data dir {path} is not a directory")
    root = find_upstream_root(path)
    folders = _class_folders(root, path)
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
            inside(path, f, "an image file")
            for f in folder.iterdir()
            if f.is_file() and _visible(f) and f.suffix.lower() in IMAGE_EXTENSIONS
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
        if candidate.is_file() and inside(path, candidate, "its timestamp.txt"):
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
    return sorted(inside(path, shard, "a parquet shard") for shard in path.glob(SHARD_GLOB))


def recorded_checksums(path: Path) -> dict[str, str]:
    """Checksums recorded in a built folder: ``{"spurbench.json": ..., "README.md": ...}`` (those present)."""
    found: dict[str, str] = {}
    meta_file = path / META_FILE
    if meta_file.is_file() and inside(path, meta_file, "its card"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{meta_file}: not valid JSON ({exc})") from None
        if isinstance(meta, dict) and isinstance(meta.get("checksum"), str):
            found[META_FILE] = meta["checksum"]
    card = path / CARD_FILE
    if card.is_file() and inside(path, card, "its README"):
        match = _CHECKSUM_LINE.search(card.read_text(errors="replace"))
        if match:
            found[CARD_FILE] = match.group(1)
    return found


def read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META_FILE
    if not meta_file.is_file():
        return {}
    inside(path, meta_file, "its card")
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
            raise ChecksumMismatchError(f"{source}: content checksum mismatch: {where} records {expected}, images hash to {actual}")
    return actual
