"""Trust nothing stored: re-derive every metric of a result file from its per-image probabilities.

``verify_result(path)`` checks, in order, and raises a one-line ``VerificationError`` naming the file
and the field at the first mismatch:

1. the schema (pydantic ``Result``, ``schema_version`` included);
2. the benchmark: a known name, a known revision, and that revision's content checksum;
3. the image set: exactly the benchmark's image ids, each with its class and role, and every head
   scoring exactly those images;
4. every per-class metric and every aggregate metric (the bootstrap CI included, same seed), recomputed
   from ``image_prob`` / ``image_top1`` with the same code the harness uses, within 1e-6.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from spurbench.errors import SpurbenchError
from spurbench.metrics import MAX_BOOTSTRAP_DRAWS, ClassScores, aggregate_metrics, class_metrics
from spurbench.results import Result, read_result

TOLERANCE = 1e-6
KNOWN_HEADS = ("plain", "spufix")


class VerificationError(SpurbenchError):
    """A result file that does not hold up; the message names the file and the field."""


@dataclass(frozen=True)
class BenchmarkReference:
    """What a published benchmark revision contains: its checksum and its images."""

    name: str
    revision: str
    checksum: str
    images: dict[str, tuple[int, str]] | None  # image id -> (class index, role); None: only counts are known
    num_classes: int | None = None
    negatives_per_class: int | None = None
    positives_per_class: int | None = None


def _planted_reference(revision: str) -> BenchmarkReference | None:
    from spurbench.benchmarks.base import BenchmarkOptions
    from spurbench.benchmarks.planted import GENERATOR_VERSION, load_planted

    match = re.fullmatch(rf"generator-v{GENERATOR_VERSION}-seed([0-9]{{1,9}})", revision)
    if match is None:
        return None
    bench = load_planted(BenchmarkOptions(seed=int(match[1])))
    return BenchmarkReference("planted", revision, bench.checksum, {im.image_id: (im.class_index, im.role) for im in bench.images})


def _spurious_imagenet_reference(revision: str) -> BenchmarkReference | None:
    from spurbench.benchmarks.spurious_imagenet import KNOWN_REVISIONS

    checksum = KNOWN_REVISIONS.get(revision)
    # 100 classes; the positives are the ImageNet-val images of the class (50), the negatives 75.
    return None if checksum is None else BenchmarkReference("spurious-imagenet", revision, checksum, None, 100, 75, 50)


# benchmark name -> revision -> reference (None: unknown revision)
REFERENCES: dict[str, Callable[[str], BenchmarkReference | None]] = {
    "planted": _planted_reference,
    "spurious-imagenet": _spurious_imagenet_reference,
}


@lru_cache(maxsize=16)
def benchmark_reference(name: str, revision: str | None) -> BenchmarkReference:
    if name not in REFERENCES:
        raise VerificationError(f"unknown benchmark {name!r} (known: {', '.join(REFERENCES)})")
    reference = REFERENCES[name](revision or "")
    if reference is None:
        raise VerificationError(f"unknown revision {revision!r} of benchmark {name!r}")
    return reference


def verify_result(path: str | Path) -> Result:
    """The validated result, or a one-line VerificationError ``<file>: <field>: <what>``."""
    path = Path(path)
    try:
        result = read_result(path)
    except SpurbenchError as exc:
        raise VerificationError(str(exc)) from None
    try:
        _verify(result)
    except VerificationError as exc:
        raise VerificationError(f"{path}: {exc}") from None
    return result


def _verify(result: Result) -> None:
    bench = result.benchmark
    reference = benchmark_reference(bench.name, bench.revision)
    if bench.checksum != reference.checksum:
        raise VerificationError(f"benchmark.checksum: {bench.checksum!r} is not the checksum of {bench.name} revision {bench.revision!r}")
    if "plain" not in result.heads or set(result.heads) - set(KNOWN_HEADS):
        raise VerificationError(f"heads: {sorted(result.heads)}; a result has 'plain' and optionally 'spufix'")
    _verify_images(result, reference)
    for head_name in result.heads:
        draws = result.heads[head_name].aggregate.bootstrap_draws
        if not 0 <= draws <= MAX_BOOTSTRAP_DRAWS:
            raise VerificationError(f"heads.{head_name}.aggregate.bootstrap_draws: {draws}, accepted 0..{MAX_BOOTSTRAP_DRAWS}")
        _verify_head(result, head_name)


def _verify_images(result: Result, reference: BenchmarkReference) -> None:
    images = result.images
    if reference.images is not None:
        missing = sorted(set(reference.images) - set(images))
        extra = sorted(set(images) - set(reference.images))
        if missing or extra:
            what = f"missing {len(missing)} (e.g. {missing[0]!r})" if missing else f"{len(extra)} unknown (e.g. {extra[0]!r})"
            raise VerificationError(f"images: {what} image ids of {reference.name} revision {reference.revision!r}")
        for image_id, (class_index, role) in reference.images.items():
            if (images[image_id].class_index, images[image_id].role) != (class_index, role):
                raise VerificationError(f"images[{image_id!r}]: class/role do not match the benchmark")
    else:
        per_class: dict[int, dict[str, int]] = {}
        for record in images.values():
            roles = per_class.setdefault(record.class_index, {"positive": 0, "negative": 0})
            roles[record.role] += 1
        if len(per_class) != reference.num_classes:
            raise VerificationError(f"images: {len(per_class)} classes, {reference.name} has {reference.num_classes}")
        for k, roles in sorted(per_class.items()):
            expected = {"positive": reference.positives_per_class, "negative": reference.negatives_per_class}
            if roles != expected:
                raise VerificationError(f"images: class {k} has {roles['positive']} class images and {roles['negative']} spurious images, the benchmark has {expected['positive']} and {expected['negative']}")
    # What no softmax can produce: a class probability above 1/2 that is not the top-1, or a top-1
    # class with less than 1/C of the probability. (The schema already holds every value to [0, 1].)
    floor = 1.0 / max(result.model.num_classes, 1)
    for head_name, head in result.heads.items():
        for image_id, prob in head.image_prob.items():
            top1 = head.image_top1.get(image_id)
            if (prob > 0.5 and top1 is False) or (top1 is True and prob < floor - TOLERANCE):
                raise VerificationError(
                    f"heads.{head_name}.image_top1[{image_id!r}]: {top1} with probability {prob!r} of its class is impossible for a softmax over {result.model.num_classes} classes"
                )
    counts = (result.benchmark.num_positives, result.benchmark.num_negatives)
    actual = (sum(r.role == "positive" for r in images.values()), sum(r.role == "negative" for r in images.values()))
    if counts != actual:
        raise VerificationError(f"benchmark.num_positives/num_negatives: {counts} but the file lists {actual}")
    for head_name, head in result.heads.items():
        for field in ("image_prob", "image_top1"):
            ids = getattr(head, field).keys()
            if ids != images.keys():
                gone = sorted(set(images) - set(ids))
                raise VerificationError(
                    f"heads.{head_name}.{field}: " + (f"no entry for image {gone[0]!r}" if gone else f"entry for an unknown image {sorted(set(ids) - set(images))[0]!r}")
                )


def _close(stored: float | None, recomputed: float | None) -> bool:
    if stored is None or recomputed is None:
        return stored is None and recomputed is None
    if math.isnan(recomputed):
        return math.isnan(stored)
    return abs(stored - recomputed) <= TOLERANCE


def _verify_head(result: Result, head_name: str) -> None:
    head = result.heads[head_name]
    by_class: dict[int, dict[str, list[str]]] = {}
    for image_id, record in result.images.items():
        by_class.setdefault(record.class_index, {"positive": [], "negative": []})[record.role].append(image_id)
    stored_classes = [row.class_index for row in head.classes]
    if sorted(stored_classes) != sorted(by_class):
        raise VerificationError(f"heads.{head_name}.classes: classes {sorted(stored_classes)} but images of {sorted(by_class)}")
    per_class: list[ClassScores] = []
    for i, row in enumerate(head.classes):
        pos, neg = by_class[row.class_index]["positive"], by_class[row.class_index]["negative"]
        scores = ClassScores(
            row.class_index,
            np.array([head.image_prob[j] for j in pos]),
            np.array([head.image_prob[j] for j in neg]),
            np.array([head.image_top1[j] for j in pos]),
            np.array([head.image_top1[j] for j in neg]),
        )
        per_class.append(scores)
        where = f"heads.{head_name}.classes[{i}] (class {row.class_index})"
        if (row.num_positives, row.num_negatives) != (len(pos), len(neg)):
            raise VerificationError(f"{where}.num_positives/num_negatives: {(row.num_positives, row.num_negatives)} but {(len(pos), len(neg))} images")
        for field, value in class_metrics(scores).items():
            if not _close(getattr(row, field), value):
                raise VerificationError(f"{where}.{field}: stored {getattr(row, field)!r}, recomputed {value!r}")
    aggregate = head.aggregate
    recomputed = aggregate_metrics(per_class, draws=aggregate.bootstrap_draws)
    for field, value in recomputed.items():
        if not _close(getattr(aggregate, field), value):
            raise VerificationError(f"heads.{head_name}.aggregate.{field}: stored {getattr(aggregate, field)!r}, recomputed {value!r}")


def verify_all(paths: list[Path]) -> list[Result]:
    """Verify every file; raises at the first bad one."""
    if not paths:
        raise VerificationError("no result files to verify")
    return [verify_result(p) for p in paths]


__all__ = ["BenchmarkReference", "VerificationError", "benchmark_reference", "verify_all", "verify_result"]
