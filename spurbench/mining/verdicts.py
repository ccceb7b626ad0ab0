"""People's verdicts on mined candidates (``spurbench label DIR --mode verify``), and the export of the
verified images as a benchmark folder (``spurbench mine export``).

The verdicts are a ledger (``spurbench.ledger``), ``DIR/verify.jsonl`` beside ``DIR/candidates.json``:
its header names the mining's model and pool, so verdicts on another mining are refused. A verdict is
about an image and a class: is the class's object in it? ``absent`` / ``present`` / ``unsure``, the
question the paper's authors asked of every image of their benchmark. It is recorded per (class,
image, labeler) with the time and the components the image is a candidate of: one verdict for all of
them, whichever grid it was given in (``spurbench.mining.verdict_records``: the record; records written
before list no components and mean the same). As with the component labels
(``spurbench.discovery.labels``), every click appends one record, locked and synced, and the last record
per key wins; so every count here is of distinct images per class, however many grids show one. A
folder verified before the ledger holds ``DIR/verify.json`` (format 1): it is read as it is, and the
first new verdict moves its records into the ledger.

Export rule: an image goes into the benchmark when at least ``min_votes`` labelers' latest verdict is
``absent`` and none is ``present`` (an object seen by anyone keeps it out: a positive among the
negatives would be a wrong label).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from spurbench.errors import SpurbenchError
from spurbench.files import check_inside
from spurbench.ledger import Identity, Ledger, check_labeler
from spurbench.mining.verdict_records import (
    LEDGER,
    VERDICTS,
    VERIFY_FILE,
    Key,
    UnknownCandidateError,
    Verdict,
    VerdictRecord,
    VerdictsFile,
    verdicts_ledger,
)

if TYPE_CHECKING:  # spurbench.mining and the benchmarks import torch: only where the export needs them
    from spurbench.benchmarks import BenchmarkImage
    from spurbench.mining.index import Candidate, MiningIndex
    from spurbench.mining.pool import Pool

MINING_FILE = "candidates.json"  # spurbench.mining's INDEX_FILE, named here for the checks made before torch
SERVED_FOLDERS = ("thumbs", "reference")  # spurbench.mining's THUMBS_DIR and REFERENCE_DIR, likewise


def _identity(index: MiningIndex) -> Identity:
    return {"model": index.model.name, "weights_revision": index.model.weights_revision, "pool_revision": index.pool.revision}


def _read_mining(folder: Path) -> MiningIndex:
    # lazy: the mining package imports torch; the label command checks the store before that
    from spurbench.mining.index import read_mining

    return read_mining(folder)


def read_verdicts(
    folder: Path, index: MiningIndex | None = None, ledger: Ledger[VerdictRecord, VerdictsFile] | None = None
) -> VerdictsFile:
    """The verdicts of a mining folder (none yet: empty); one-line errors for a corrupt store or one
    that belongs to another mining."""
    index = index or _read_mining(Path(folder))
    return (ledger or verdicts_ledger(folder)).contents(_identity(index))


def check_folder(folder: Path) -> None:
    """The checks ``spurbench label --mode verify`` makes before importing the pipeline (torch):
    ``folder`` is a mining folder, and its verdicts are readable and of its mining (as far as the
    index's JSON says without its schema; ``read_verdicts`` checks it all again)."""
    folder = Path(folder)
    if not (folder / MINING_FILE).is_file():
        raise SpurbenchError(f"{folder}: not a mining folder (no {MINING_FILE}; run `spurbench mine` first)")
    for name in SERVED_FOLDERS:  # the app checks again
        check_inside(folder, folder / name, f"the served folder {name}/")
    LEDGER.check_stored(
        folder,
        MINING_FILE,
        lambda raw: {
            "model": raw["model"]["name"],
            "weights_revision": raw["model"]["weights_revision"],
            "pool_revision": raw["pool"]["revision"],
        },
    )


def latest_verdicts(verdicts: VerdictsFile) -> dict[Key, VerdictRecord]:
    """Each labeler's current verdict per image of a class: the last record for its (class, image, labeler)."""
    return {(r.class_index, r.image_id, r.labeler): r for r in verdicts.records}


def candidate_components(index: MiningIndex) -> dict[tuple[int, str], list[int]]:
    """(class, image) -> the ranks of the class's components the image is a candidate of, ascending."""
    out: dict[tuple[int, str], list[int]] = {}
    for entry in index.components:
        for c in entry.candidates:
            out.setdefault((entry.class_index, c.image_id), []).append(entry.component)
    return {key: sorted(set(ranks)) for key, ranks in out.items()}


def record_verdict(
    folder: Path,
    class_index: int,
    image_id: str,
    verdict: str,
    labeler: str,
    index: MiningIndex | None = None,
    ledger: Ledger[VerdictRecord, VerdictsFile] | None = None,
) -> VerdictRecord:
    """Append one verdict to ``folder``'s ledger, locked and synced; it lists the image's components."""
    return record_verdicts(folder, class_index, [image_id], verdict, labeler, index, ledger)[0]


def record_verdicts(
    folder: Path,
    class_index: int,
    image_ids: list[str],
    verdict: str,
    labeler: str,
    index: MiningIndex | None = None,
    ledger: Ledger[VerdictRecord, VerdictsFile] | None = None,
    placements: dict[tuple[int, str], list[int]] | None = None,
) -> list[VerdictRecord]:
    """The same verdict on several candidates of a class, appended in one locked, synced write ("the rest
    of a component absent"), one record per image; nothing is written when one of them is no candidate.
    (``placements``: the index's ``candidate_components``, when the caller keeps it.)"""
    folder = Path(folder)
    index = index or _read_mining(folder)
    placements = placements or candidate_components(index)
    if not any(k == class_index for k, _ in placements):
        raise UnknownCandidateError(f"the mining has no candidates of class {class_index}")
    for image_id in image_ids:
        if (class_index, image_id) not in placements:
            raise UnknownCandidateError(f"{image_id!r} is not a candidate of class {class_index}")
    if not image_ids or len(set(image_ids)) != len(image_ids):
        raise SpurbenchError(f"class {class_index}: {len(image_ids)} image ids: expected distinct candidates, at least one")
    if verdict not in VERDICTS:
        raise SpurbenchError(f"verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
    at, who = datetime.now(timezone.utc), check_labeler(labeler)
    records = [
        VerdictRecord(class_index=class_index, image_id=i, verdict=verdict, labeler=who, at=at, components=placements[(class_index, i)])
        for i in image_ids
    ]
    return (ledger or verdicts_ledger(folder)).append_many(records, _identity(index))


def tally(index: MiningIndex, verdicts: VerdictsFile) -> dict[int, dict[str, dict[str, int]]]:
    """Per class, per candidate image: how many labelers' latest verdict is each of ``VERDICTS``."""
    # lazy: the mining package imports torch (see _read_mining)
    from spurbench.mining.index import candidates_by_class

    counts: dict[int, dict[str, dict[str, int]]] = {
        k: {c.image_id: dict.fromkeys(VERDICTS, 0) for c in cands} for k, cands in candidates_by_class(index).items()
    }
    for (k, image_id, _), record in latest_verdicts(verdicts).items():
        if image_id in counts.get(k, {}):
            counts[k][image_id][record.verdict] += 1
    return counts


def class_counts(
    index: MiningIndex, verdicts: VerdictsFile, labeler: str, by_class: dict[int, list[Candidate]] | None = None
) -> dict[int, dict[str, int]]:
    """Per class, over its distinct candidate images: ``candidates``, how many ``labeler`` gave a verdict
    on (``verified``), and how many of those are each of ``VERDICTS`` (``by_class``: the index's
    ``candidates_by_class``, when the caller keeps it)."""
    # lazy: the mining package imports torch (see _read_mining)
    from spurbench.mining.index import candidates_by_class

    mine: dict[tuple[int, str], str] = {(k, i): r.verdict for (k, i, who), r in latest_verdicts(verdicts).items() if who == labeler}
    counts = {}
    for k, cands in (by_class or candidates_by_class(index)).items():
        given = [mine[(k, c.image_id)] for c in cands if (k, c.image_id) in mine]
        counts[k] = {"candidates": len(cands), "verified": len(given), **{v: given.count(v) for v in VERDICTS}}
    return counts


def verified_absent(counts: dict[str, int], min_votes: int) -> bool:
    """The export rule: at least ``min_votes`` say absent and nobody says present."""
    return counts["absent"] >= min_votes and counts["present"] == 0


MINED_FORMAT = "spurious-folder"  # the benchmark plugin that writes (and loads) mined benchmark folders


def _pool_bytes(candidate: Candidate, pool: Pool | None, by_id: dict[str, BenchmarkImage]) -> tuple[str, Callable[[], bytes]]:
    """(suffix, reader) of a candidate's bytes as they go into the benchmark: a pool file's own bytes
    (its digest checked against the one mining recorded), or a generated or parquet-row image as PNG."""
    path = Path(candidate.source) if pool is None else pool.files.get(candidate.image_id)
    if path is not None:

        def read_file() -> bytes:
            data = path.read_bytes()
            if "sha256:" + hashlib.sha256(data).hexdigest() != candidate.digest:
                raise SpurbenchError(f"{path}: changed since it was mined (digest differs); mine again")
            return data

        return path.suffix.lower() or ".png", read_file
    image = by_id[candidate.image_id]

    def read_encoded() -> bytes:
        buffer = io.BytesIO()
        image.open().save(buffer, format="PNG")
        return buffer.getvalue()

    return ".png", read_encoded


def export_benchmark(
    folder: Path, out: Path, min_votes: int = 1, min_per_class: int = 1, name: str | None = None
) -> tuple[str, dict[int, dict[str, int]]]:
    """Write the verified object-absent candidates of a mining as a benchmark folder (through the
    ``spurious-folder`` plugin); returns its content checksum and the per-class counts. Nothing is
    written when a class has fewer than ``min_per_class`` images."""
    # lazy: the export needs the pipeline (torch); the pages' checks do not
    from spurbench.benchmarks import MinedImage, WritesMined, get_benchmark, require
    from spurbench.mining.index import best_placements, component_names, read_mining
    from spurbench.mining.pool import resolve_pool

    if min_votes < 1 or min_per_class < 1:
        raise SpurbenchError("--min-votes and --min-per-class must be at least 1")
    folder = Path(folder)
    index = read_mining(folder)
    verdicts = read_verdicts(folder, index)
    counts = tally(index, verdicts)
    best = best_placements(index)  # each image once per class: where it ranks best
    per_class: dict[int, dict[str, int]] = {}
    for k, images in sorted(counts.items()):
        summary = {"candidates": len(images), **{v: sum(c[v] > 0 for c in images.values()) for v in VERDICTS}}
        summary["unverified"] = sum(not any(c.values()) for c in images.values())
        summary["exported"] = sum(verified_absent(c, min_votes) for c in images.values())
        per_class[k] = summary
    short = [k for k, s in per_class.items() if s["exported"] < min_per_class]
    if short:
        k = short[0]
        raise SpurbenchError(
            f"class {k}: only {per_class[k]['exported']} verified object-absent images, fewer than --min-per-class {min_per_class} ({len(short)} such classes); verify more or lower it"
        )
    pool = None  # a local folder's candidates are read from their files
    if index.pool.spec is not None:
        pool = resolve_pool(index.pool.spec)
        if pool.benchmark.revision != index.pool.revision:
            raise SpurbenchError(
                f"pool {index.pool.spec}: is at revision {pool.benchmark.revision} now, the mining used {index.pool.revision}"
            )
    by_id = {im.image_id: im for im in pool.benchmark.images} if pool is not None else {}
    items = []
    for (k, image_id), (component, c) in sorted(best.items()):
        if verified_absent(counts[k][image_id], min_votes):
            suffix, read = _pool_bytes(c, pool, by_id)
            items.append(MinedImage(k, component, image_id, c.source, c.digest, suffix, read, dict(counts[k][image_id])))
    facts = {
        "name": name or Path(out).name,
        "label_space": index.model.label_space,
        "model": index.model.model_dump(mode="json"),
        "discovery": index.discovery,
        "basis": index.basis,
        "components": {str(k): sorted({e.component for e in index.components if e.class_index == k}) for k in per_class},
        "pool": index.pool.model_dump(mode="json"),
        "require_predicted": index.require_predicted,
        "min_votes": min_votes,
        "labelers": sorted({r.labeler for r in verdicts.records}),
        "classes": {str(k): v for k, v in per_class.items()},
        "class_names": {str(e.class_index): e.class_name for e in index.components},
        "component_names": component_names(index),  # class -> component -> feature name: the card lists them per class
    }
    return require(get_benchmark(MINED_FORMAT), WritesMined).write_mined(Path(out), items, facts), per_class


__all__ = [
    "LEDGER",
    "MINED_FORMAT",
    "VERDICTS",
    "VERIFY_FILE",
    "Key",
    "UnknownCandidateError",
    "Verdict",
    "VerdictRecord",
    "VerdictsFile",
    "candidate_components",
    "check_folder",
    "class_counts",
    "export_benchmark",
    "latest_verdicts",
    "read_verdicts",
    "record_verdict",
    "record_verdicts",
    "tally",
    "verdicts_ledger",
    "verified_absent",
]
