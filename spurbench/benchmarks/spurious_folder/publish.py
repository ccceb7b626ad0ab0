"""Reading a mined benchmark folder back (either form), and its Hub dataset: build, push, download.

The folder form is Spurious ImageNet's upstream layout and the built form is Spurious ImageNet's
parquet build, so both are read and written by that plugin's ``layout`` / ``negatives`` / ``build``
code; only the card (``spurbench.json``, ``README.md``) is this plugin's own.
"""

from __future__ import annotations

from pathlib import Path

from spurbench.benchmarks.folders import inside
from spurbench.benchmarks.shared.spurious_build import checksum_of_shards, download, verify_built_dir, write_shards
from spurbench.benchmarks.shared.spurious_layout import (
    CARD_FILE,
    DEFAULT_SHARD_SIZE,
    META_FILE,
    is_built_dir,
    scan_upstream,
    verify_checksum,
)
from spurbench.benchmarks.shared.spurious_negatives import Negatives, load_built_negatives, load_upstream_negatives
from spurbench.benchmarks.spurious_folder.card import Card, card_json, read_card
from spurbench.benchmarks.spurious_folder.readme import dataset_card
from spurbench.benchmarks.spurious_folder.write import atomic_folder
from spurbench.errors import ChecksumMismatchError, DataError, SpurbenchError
from spurbench.hub import commit


def read_mined(folder: str | Path, limit: int | None = None) -> tuple[Card, Negatives]:
    """The card and the negatives (at most ``limit`` per class) of a mined benchmark folder, its content
    checksum recomputed and compared with the card's (ChecksumMismatchError on a mismatch)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DataError(f"mined benchmark folder {path} does not exist or is not a directory")
    card = read_card(path)
    built = is_built_dir(path)
    if built != (card.layout == "parquet"):
        raise DataError(
            f"{path}: its card says layout {card.layout!r}, but the folder {'holds' if built else 'has no'} parquet shards under data/"
        )
    negatives = load_built_negatives(path, str(path), limit) if built else load_upstream_negatives(path, limit)
    verify_checksum(path, negatives.checksum, str(path))  # the card's and the README's record
    return card, negatives


def build_dataset(source: Path, out: Path, shard_size: int = DEFAULT_SHARD_SIZE) -> str:
    """Package a mined folder (folder form) as a Hub dataset folder ``out`` (parquet form, the same
    checksum), all or nothing; a summary line."""
    card, _ = read_mined(source)
    if card.layout != "folder":
        raise DataError(f"{source}: is a built dataset already (layout {card.layout!r}); push it as it is")
    scanned = scan_upstream(source)
    names = {int(k): entry.name for k, entry in card.classes.items()}
    with atomic_folder(out) as tmp:
        shards, _ = write_shards(scanned, tmp, lambda k: names.get(k) or f"class {k}", shard_size)
        checksum = checksum_of_shards([tmp / rel for rel in shards])  # what was written reads back to the same content
        if checksum != card.checksum:
            raise ChecksumMismatchError(f"{source}: its images changed while building ({checksum} vs {card.checksum})")
        built = card.model_copy(update={"layout": "parquet", "shards": shards})
        (tmp / META_FILE).write_text(card_json(built))
        (tmp / CARD_FILE).write_text(dataset_card(built))
    return f"{card.num_images} images of {len(card.classes)} classes in {len(shards)} shard(s), content checksum {checksum}"


def push_dataset(folder: Path, repo_id: str, token: str | None = None, branch: str | None = None) -> str:
    """Verify a built folder and upload it to the Hub dataset repo ``repo_id`` as one commit; the commit url."""
    path = Path(folder).expanduser()
    card = read_card(path)
    if card.layout != "parquet" or not is_built_dir(path):
        raise DataError(f"{path} is not a built mined benchmark (run `spurbench dataset build --from-upstream {path}` first)")
    checksum = verify_built_dir(path)  # a build whose files no longer match its checksum is not published
    files: dict[str, Path | bytes] = {
        p.relative_to(path).as_posix(): inside(path, p, "a file to upload") for p in sorted(path.rglob("*")) if p.is_file()
    }
    return commit(
        repo_id, files, repo_type="dataset", message=f"{card.name}: mined spurious benchmark ({checksum})", token=token, branch=branch
    )


def download_dataset(repo_id: str | None, revision: str | None, out: Path | None) -> Path:
    """Fetch a pushed mined benchmark, verify it, return its folder (for ``--data-dir``)."""
    if not repo_id:
        raise SpurbenchError("a mined benchmark has no default dataset repo: pass --dataset-repo ORG/NAME")
    path = download(repo_id, revision, out)
    read_card(path)
    return path
