"""Writing a mined benchmark folder from verified images (``write_mined``), all or nothing.

The folder is built in a hidden temporary sibling of ``out`` and renamed onto it at the end, so a reader
never sees half a benchmark and an error leaves nothing behind. Image bytes are stored exactly as
``MinedImage.read()`` returns them (decoded once, to refuse a corrupt one, never re-encoded).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from spurbench.benchmarks.base import MinedImage
from spurbench.benchmarks.folders import IMAGE_EXTENSIONS
from spurbench.benchmarks.shared.spurious_layout import CARD_FILE, META_FILE, checksum_from_digests, image_id_for
from spurbench.benchmarks.spurious_folder.card import (
    CHECKSUM_DEFINITION,
    FORMAT_VERSION,
    IMAGES_DIR,
    KIND,
    Card,
    ClassEntry,
    ImageEntry,
    Layout,
    card_json,
    class_folder,
    name_slug,
)
from spurbench.benchmarks.spurious_folder.readme import dataset_card
from spurbench.errors import DataError, SpurbenchError
from spurbench.files import plain, slug
from spurbench.schemas import FEATURE_NAME_LENGTH, feature_name

_STEM_CHARS = 60  # of the pool file's name, in the stored file's name: readable, not unbounded


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A temporary sibling folder of ``out`` to fill; renamed onto ``out`` when the block succeeds, removed
    when it fails. ``out`` must not exist or be an empty folder (one-line DataError otherwise)."""
    out = Path(out).expanduser()
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise DataError(f"{out} exists and is not an empty folder; give a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # a sibling: same filesystem, so the rename is atomic
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed earlier run of this process id
    tmp.mkdir()
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()  # the empty folder it may replace
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _required(facts: dict[str, Any], key: str) -> str:
    value = facts.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SpurbenchError(f"a mined benchmark needs a {key!r} (a non-empty string) among its facts")
    return value


def _check_item(item: MinedImage) -> None:
    what = f"mined image {item.pool_image_id!r}"
    if not isinstance(item.class_index, int) or not 0 <= item.class_index < 1000:
        raise SpurbenchError(f"{what}: class {item.class_index!r} is outside 0-999, the classes the folder layout can name")
    if not isinstance(item.component, int) or item.component < 0:
        raise SpurbenchError(f"{what}: component {item.component!r} is not a non-negative integer")
    if item.suffix.lower() not in IMAGE_EXTENSIONS:
        raise SpurbenchError(f"{what}: unsupported image type {item.suffix!r} (supported: {', '.join(IMAGE_EXTENSIONS)})")


def file_name_for(item: MinedImage) -> str:
    """``<first 12 hex of the digest>_<pool file name, slugged><suffix>``: stable, readable, and unique
    per folder unless two pool files have the same bytes and the same name."""
    digest = re.sub(r"[^0-9a-f]", "", item.digest.rsplit(":", 1)[-1].lower())[:12] or "nodigest"
    base = PurePosixPath(item.pool_image_id.replace("\\", "/")).name
    stem = base[: -len(PurePosixPath(base).suffix)] if PurePosixPath(base).suffix.lower() in IMAGE_EXTENSIONS else base
    return f"{digest}_{slug(stem, '-')[:_STEM_CHARS] or 'image'}{item.suffix.lower()}"


def _read(item: MinedImage) -> bytes:
    """The bytes to store, checked to decode; a one-line error naming the image otherwise."""
    try:
        data = item.read()
    except SpurbenchError:
        raise
    except Exception as exc:  # a reader may fail in many ways (OSError, a generator's error)
        raise SpurbenchError(f"mined image {item.pool_image_id!r} ({item.source}): cannot read it: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, bytes) or not data:
        raise SpurbenchError(f"mined image {item.pool_image_id!r} ({item.source}): its reader gave no bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # a full decode: a truncated file would otherwise fail only at evaluation time
    except Exception as exc:  # PIL raises many types for non-image data
        raise DataError(f"corrupt image {item.pool_image_id!r} ({item.source}): {type(exc).__name__}: {exc}") from None
    return data


def _json_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts as they will read back from the card (plain JSON values), or a one-line error."""
    try:
        return json.loads(json.dumps(plain(facts), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise SpurbenchError(f"the facts of a mined benchmark must be JSON values: {exc}") from None


def _class_names(facts: dict[str, Any]) -> dict[str, str]:
    names = facts.get("class_names")
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def _component_names(facts: dict[str, Any], k: int, components: list[int]) -> dict[str, str]:
    """The names of class ``k``'s exported components among ``facts["component_names"]`` (class -> component -> name)."""
    named = facts.get("component_names")
    of_class = named.get(str(k)) if isinstance(named, dict) else None
    if not isinstance(of_class, dict):
        return {}
    out = {str(c): of_class[str(c)] for c in components if str(c) in of_class}
    bad = next((n for n in out.values() if feature_name(n) is None), None)
    if bad is not None:
        raise SpurbenchError(f"class {k}: {json.dumps(bad)[:40]} is not a feature name (one line, 1 to {FEATURE_NAME_LENGTH} characters)")
    return out


def write_mined(out: Path, images: Sequence[MinedImage], facts: dict[str, Any]) -> str:
    """Write ``out``: ``images/<class folder>/<file>``, ``spurbench.json`` and ``README.md``; the checksum."""
    facts = _json_facts(facts)
    name, label_space = _required(facts, "name"), _required(facts, "label_space")
    if not name_slug(name):
        raise SpurbenchError(f"mined benchmark name {name!r} has no letter or digit to name the benchmark by")
    if not images:
        raise SpurbenchError("no verified images to write a mined benchmark from")
    for item in images:
        _check_item(item)
    seen: set[tuple[int, str]] = set()
    for item in images:
        if (item.class_index, item.pool_image_id) in seen:
            raise SpurbenchError(f"mined image {item.pool_image_id!r} is given twice for class {item.class_index}")
        seen.add((item.class_index, item.pool_image_id))
    with atomic_folder(out) as tmp:
        entries: list[ImageEntry] = []
        taken: set[str] = set()
        for item in sorted(images, key=lambda im: (im.class_index, im.component, im.pool_image_id)):
            folder = class_folder(item.class_index, item.component)
            file_name, stem, n = file_name_for(item), None, 1
            while f"{folder}/{file_name}" in taken:  # same bytes and name from two places in the pool
                n += 1
                stem = stem or file_name[: -len(item.suffix)]
                file_name = f"{stem}-{n}{item.suffix.lower()}"
            taken.add(f"{folder}/{file_name}")
            data = _read(item)
            (tmp / IMAGES_DIR / folder).mkdir(parents=True, exist_ok=True)
            (tmp / IMAGES_DIR / folder / file_name).write_bytes(data)
            entries.append(
                ImageEntry(
                    image_id=image_id_for(item.class_index, item.component, file_name),
                    file=f"{IMAGES_DIR}/{folder}/{file_name}",
                    class_index=item.class_index,
                    component=item.component,
                    pool_image_id=item.pool_image_id,
                    source=item.source,
                    digest=item.digest,
                    sha256=hashlib.sha256(data).hexdigest(),
                    verdicts={str(k): int(v) for k, v in item.verdicts.items()},
                )
            )
        card = new_card(name, label_space, entries, facts)
        (tmp / META_FILE).write_text(card_json(card))
        (tmp / CARD_FILE).write_text(dataset_card(card))
    return card.checksum


def new_card(
    name: str, label_space: str, entries: list[ImageEntry], facts: dict[str, Any], layout: Layout = "folder", shards: Sequence[str] = ()
) -> Card:
    """The card of a folder holding ``entries``; its checksum computed from their stored bytes' digests."""
    names = _class_names(facts)
    classes: dict[str, ClassEntry] = {}
    for k in sorted({e.class_index for e in entries}):
        mine = [e for e in entries if e.class_index == k]
        components = sorted({e.component for e in mine})
        classes[str(k)] = ClassEntry(
            name=names.get(str(k)), components=components, images=len(mine), component_names=_component_names(facts, k, components)
        )
    return Card(
        format_version=FORMAT_VERSION,
        kind=KIND,
        name=name,
        label_space=label_space,
        layout=layout,
        checksum=checksum_from_digests((e.image_id, e.sha256) for e in entries),
        checksum_definition=CHECKSUM_DEFINITION,
        num_images=len(entries),
        classes=classes,
        images=entries,
        provenance={k: v for k, v in facts.items() if k not in ("name", "label_space", "component_names")},  # names: in classes
        written_at=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        shards=list(shards),
    )
