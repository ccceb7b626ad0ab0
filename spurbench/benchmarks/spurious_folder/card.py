"""``spurbench.json`` of a mined benchmark folder: what it holds, where it came from, its checksum.

One schema for both forms of the folder: ``layout: "folder"`` (what ``write_mined`` writes: the
upstream Spurious ImageNet layout under ``images/``) and ``layout: "parquet"`` (what ``build_dataset``
makes of it for the Hub: ``data/*.parquet`` shards, listed in ``shards``). Both record the same
content checksum (``layout.checksum_from_digests`` over ``(image_id, sha256 of the stored bytes)``),
and so does the README's checksum line.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, ConfigDict, Field, NonNegativeInt, ValidationError, model_validator

from spurbench.benchmarks.folders import inside
from spurbench.benchmarks.shared.spurious_layout import META_FILE, checksum_from_digests, image_id_for
from spurbench.errors import DataError
from spurbench.files import slug, strict_json
from spurbench.schemas import FEATURE_NAME_LENGTH, Strict, feature_name, first_error_line

KIND: Final = "spurious-folder"  # the plugin that reads the folder (spurbench.json "kind")
FORMAT_VERSION: Final = 1
Layout = Literal["folder", "parquet"]  # the two forms of a folder (see above)
IMAGES_DIR = "images"
CHECKSUM_DEFINITION = "sha256 over sorted lines '<image_id>\\t<sha256(image bytes)>\\n'"
SHA256_HEX = r"^[0-9a-f]{64}$"


class _Exact(Strict):
    model_config = ConfigDict(strict=True)  # a card is JSON that spurbench wrote: no coercion either ("1" is not 1)


class ImageEntry(_Exact):
    image_id: str  # layout.image_id_for(class, component, file name)
    file: str  # where it lies in the folder form: images/spurious_class_<k>_comp_<c>/<file name>
    class_index: int = Field(ge=0, lt=1000)  # the layout's folder names allow 0-999
    component: NonNegativeInt
    pool_image_id: str
    source: str
    digest: str  # the pool file's digest as mining recorded it
    sha256: str = Field(pattern=SHA256_HEX)  # of the stored bytes
    verdicts: dict[str, NonNegativeInt]


def _checked_name(value: str) -> str:
    if feature_name(value) is None:
        raise ValueError(f"not a feature name (one line, 1 to {FEATURE_NAME_LENGTH} characters)")
    return value


class ClassEntry(_Exact):
    name: str | None  # when the exporter knew it (the positives' plugin names classes at load time)
    components: list[NonNegativeInt]
    images: NonNegativeInt
    # component (as JSON keys are) -> the name people gave its feature; only where named (absent: none is)
    component_names: dict[str, Annotated[str, AfterValidator(_checked_name)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_listed_components(self) -> ClassEntry:
        unlisted = sorted(set(self.component_names) - {str(c) for c in self.components})
        if unlisted:
            raise ValueError(f"component_names names component {unlisted[0]!r}, which the class does not list")
        return self


class Card(_Exact):
    format_version: Literal[1]
    kind: Literal["spurious-folder"]
    name: str = Field(min_length=1)
    label_space: str = Field(min_length=1)
    layout: Layout
    checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    checksum_definition: str
    num_images: NonNegativeInt
    classes: dict[str, ClassEntry]  # class index (as JSON keys are) -> what the folder holds of it
    images: list[ImageEntry]
    provenance: dict[str, Any]  # everything `mine export` recorded: model, discovery, components, pool, votes, counts
    written_at: str
    shards: list[str] = Field(default_factory=list)  # parquet layout: the shard files, relative to the folder

    def benchmark_name(self) -> str:
        """``spurious-folder-<slug of its name>``: results and boards keep two mined benchmarks apart by it."""
        return f"{KIND}-{name_slug(self.name)}"


def name_slug(name: str) -> str:
    return slug(name, "-").lower()


def class_folder(class_index: int, component: int) -> str:
    """The upstream folder name of one (class, component): third ``_`` token the class, last the component."""
    return f"spurious_class_{class_index}_comp_{component}"


def check_entries(card: Card, source: str) -> None:
    """The card agrees with itself: each id names its class, component and file, and the image list hashes
    to the recorded checksum (so a folder that matches the checksum is the folder the list describes)."""
    for entry in card.images:
        name = PurePosixPath(entry.file).name
        if entry.image_id != image_id_for(entry.class_index, entry.component, name):
            raise DataError(
                f"{source}: image {entry.image_id!r} disagrees with its class {entry.class_index}, component {entry.component} or file {entry.file!r}"
            )
    listed = checksum_from_digests((e.image_id, e.sha256) for e in card.images)
    if listed != card.checksum:
        raise DataError(f"{source}: its image list hashes to {listed}, not to the checksum it records ({card.checksum})")


def read_card(folder: Path) -> Card:
    """The validated card of a mined benchmark folder, or a one-line DataError naming the file."""
    path = Path(folder) / META_FILE
    if path.exists():
        inside(folder, path, "its card")
    try:
        data = strict_json(path.read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read the card of a mined benchmark folder ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object")
    if data.get("kind") != KIND:
        raise DataError(f"{path}: kind {data.get('kind')!r} is not a mined benchmark folder (kind {KIND!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path}: format_version {data.get('format_version')!r} is not supported (this spurbench reads {FORMAT_VERSION})")
    try:
        card = Card.model_validate(data)
    except ValidationError as exc:
        raise DataError(f"{path}: {first_error_line(exc, root='<card>')}") from None
    if not name_slug(card.name):
        raise DataError(f"{path}: name {card.name!r} has no letter or digit to name the benchmark by")
    check_entries(card, str(path))
    return card


def card_json(card: Card) -> str:
    data = card.model_dump(mode="json")
    for entry in data["classes"].values():
        if not entry["component_names"]:
            del entry["component_names"]  # a card without names is what spurbench wrote before names existed
    return json.dumps(data, indent=2) + "\n"
