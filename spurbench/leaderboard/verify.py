"""Trust nothing stored: re-derive every metric of a result file from its per-image probabilities.

``verify_result(path)`` checks, in order, and raises a one-line ``VerificationError`` naming the file
and the field at the first mismatch:

1. the schema (pydantic ``Result``, ``schema_version`` included);
2. the benchmark: a known name, a known revision, and that revision's content checksum;
3. the image set: exactly the benchmark's image ids, each with its class and role, and every head
   scoring exactly those images;
4. every per-class metric and every aggregate metric (the bootstrap CI included, same seed), recomputed
   from ``image_prob`` / ``image_top1`` with the same code the harness uses, within 1e-6.

A views result (images seen clean, noised, watermarked, ...) is checked the same way: its images and their views
against the benchmark's reference, every row's outputs for what a softmax can give, and every metric
recomputed from the rows by the plugin's own ``view_metrics``.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spurbench.benchmarks import BENCHMARKS, get_benchmark
from spurbench.benchmarks.base import ROLES, BenchmarkClass, Reference, ViewTable, images_by_class
from spurbench.errors import SpurbenchError
from spurbench.heads import HEADS, PLAIN
from spurbench.metrics import (
    MAX_BOOTSTRAP_DRAWS,
    TOLERANCE,
    ClassMetrics,
    ClassScores,
    HeadMetrics,
    aggregate_metrics,
    class_metrics,
    differences,
)
from spurbench.results import AnyResult, Result, ViewResult, read_result


class VerificationError(SpurbenchError):
    """A result file that does not hold up; the message names the file and the field."""


@functools.lru_cache(maxsize=16)  # a generated benchmark's reference is regenerated: once per revision
def benchmark_reference(name: str, revision: str | None) -> tuple[Reference, object]:
    """The plugin's reference for ``name`` at ``revision`` (and the plugin); VerificationError if unknown."""
    if name not in BENCHMARKS.names():
        raise VerificationError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS.names())})")
    plugin = get_benchmark(name)
    reference = plugin.reference(revision or "")
    if reference is None:
        raise VerificationError(f"unknown revision {revision!r} of benchmark {name!r}")
    return reference, plugin


def verify_result(path: str | Path) -> AnyResult:
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


def _verify(result: AnyResult) -> None:
    bench = result.benchmark
    reference, plugin = benchmark_reference(bench.name, bench.revision)
    if (plugin.task == "views") != isinstance(result, ViewResult):
        raise VerificationError(f"kind: {result.kind!r}, but {bench.name} is a {plugin.task!r} benchmark")
    if not reference.accepts(bench.checksum):
        raise VerificationError(f"benchmark.checksum: {bench.checksum!r} is not the checksum of {bench.name} revision {bench.revision!r}")
    if PLAIN not in result.heads or set(result.heads) - set(HEADS.names()):
        raise VerificationError(f"heads: {sorted(result.heads)}; a result has {PLAIN!r} and optionally others of {HEADS.names()}")
    if isinstance(result, ViewResult):
        _verify_views(result, reference, plugin)
        return
    _verify_images(result, reference)
    for head_name in result.heads:
        draws = result.heads[head_name].aggregate.bootstrap_draws
        if not 0 <= draws <= MAX_BOOTSTRAP_DRAWS:
            raise VerificationError(f"heads.{head_name}.aggregate.bootstrap_draws: {draws}, accepted 0..{MAX_BOOTSTRAP_DRAWS}")
        _verify_head(result, head_name, plugin)


def _verify_images(result: Result, reference: Reference) -> None:
    images = result.images
    if reference.images is not None:
        _check_image_ids(reference, images)
        for image_id, (class_index, role) in reference.images.items():
            if (images[image_id].class_index, images[image_id].role) != (class_index, role):
                raise VerificationError(f"images[{image_id!r}]: class/role do not match the benchmark")
    else:
        grouped = images_by_class([(r.class_index, r.role) for r in images.values()])
        if len(grouped) != reference.num_classes:
            raise VerificationError(f"images: {len(grouped)} classes, {reference.name} has {reference.num_classes}")
        expected = {"positive": reference.positives_per_class, "negative": reference.negatives_per_class}
        held = {(k, role): len(rows[role]) for k, rows in grouped.items() for role in ROLES}
        hint = _limit_hint({(k, role): int(expected[role] or 0) for k in grouped for role in ROLES}, held)
        for k, rows in sorted(grouped.items()):
            roles = {role: len(rows[role]) for role in ROLES}
            if roles != expected:
                raise VerificationError(
                    f"images: class {k} has {roles['positive']} class images and {roles['negative']} spurious images, the benchmark has {expected['positive']} and {expected['negative']}{hint}"
                )
    # What no softmax can produce: a class probability above 1/2 that is not the top-1, or a top-1
    # class with less than 1/C of the probability. (The schema already holds every value to [0, 1].)
    floor = 1.0 / max(result.model.num_classes, 1)
    for head_name, head in result.heads.items():
        for image_id, prob in head.image_prob.items():
            top1 = head.image_top1.get(image_id)
            if top1 is not None and _impossible_for_softmax(prob, top1, floor):
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
                    f"heads.{head_name}.{field}: "
                    + (f"no entry for image {gone[0]!r}" if gone else f"entry for an unknown image {sorted(set(ids) - set(images))[0]!r}")
                )


def _verify_head(result: Result, head_name: str, plugin) -> None:
    head = result.heads[head_name]
    ids = list(result.images)
    by_class = images_by_class([(result.images[i].class_index, result.images[i].role) for i in ids])
    stored_classes = [row.class_index for row in head.classes]
    if sorted(stored_classes) != sorted(by_class):
        raise VerificationError(f"heads.{head_name}.classes: classes {sorted(stored_classes)} but images of {sorted(by_class)}")
    prob = np.array([head.image_prob[i] for i in ids])
    top1 = np.array([head.image_top1[i] for i in ids])
    per_class: list[ClassScores] = []
    for i, row in enumerate(head.classes):
        pos, neg = by_class[row.class_index]["positive"], by_class[row.class_index]["negative"]
        scores = ClassScores(row.class_index, prob[pos], prob[neg], top1[pos], top1[neg])
        per_class.append(scores)
        where = f"heads.{head_name}.classes[{i}] (class {row.class_index})"
        if (row.num_positives, row.num_negatives) != (len(pos), len(neg)):
            raise VerificationError(
                f"{where}.num_positives/num_negatives: {(row.num_positives, row.num_negatives)} but {(len(pos), len(neg))} images"
            )
        for field, stored, recomputed in differences(ClassMetrics.model_validate(row, from_attributes=True), class_metrics(scores)):
            raise VerificationError(f"{where}.{field}: stored {stored!r}, recomputed {recomputed!r}")
    aggregate = head.aggregate
    recomputed = aggregate_metrics(per_class, draws=aggregate.bootstrap_draws)
    for field, stored, value in differences(HeadMetrics.model_validate(aggregate, from_attributes=True), recomputed):
        raise VerificationError(f"heads.{head_name}.aggregate.{field}: stored {stored!r}, recomputed {value!r}")
    classes = [_class_of(row) for row in head.classes]
    extra = plugin.extra_metrics(classes, [row.auc for row in head.classes])
    if set(extra) != set(head.extra_metrics) or any(abs(extra[k] - head.extra_metrics[k]) > TOLERANCE for k in extra):
        raise VerificationError(f"heads.{head_name}.extra_metrics: stored {head.extra_metrics}, recomputed {extra}")


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE


def _check_image_ids(reference: Reference, images) -> None:
    """Exactly the reference's image ids (one line naming what is missing or unknown)."""
    missing = sorted(set(reference.images or ()) - set(images))
    extra = sorted(set(images) - set(reference.images or ()))
    if missing or extra:
        what = f"missing {len(missing)} (e.g. {missing[0]!r})" if missing else f"{len(extra)} unknown (e.g. {extra[0]!r})"
        hint = (
            "" if extra else _limit_hint(Counter((reference.images or {}).values()), Counter((reference.images or {})[i] for i in images))
        )
        raise VerificationError(f"images: {what} image ids of {reference.name} revision {reference.revision!r}{hint}")


def _limit_hint(benchmark: Mapping[Any, int], file: Mapping[Any, int]) -> str:
    """Why images are missing when the file holds, of every (class, role), min(its count, N) images: what
    ``--limit N`` gives. A limited run is a smoke test, so verify rejects it, and says so."""
    n = max(file.values(), default=0)
    if n and any(count > n for count in benchmark.values()) and all(file.get(key, 0) == min(count, n) for key, count in benchmark.items()):
        return f"; the file holds at most {n} images per class and role: it was made with --limit {n}, a smoke run, and verify accepts only full runs"
    return ""


def _impossible_for_softmax(prob: float, top1: bool, floor: float) -> bool:
    """What no softmax gives: a class probability above 1/2 that is not the top-1, or a top-1 class
    below 1/C of the probability (``floor``)."""
    return (prob > 0.5 and not top1) or (top1 and prob < floor - TOLERANCE)


def _verify_views(result: ViewResult, reference: Reference, plugin) -> None:
    bench = result.benchmark
    if reference.images is not None:
        _check_image_ids(reference, result.images)
        for image_id, image in result.images.items():
            if image.class_index != reference.images[image_id][0]:
                raise VerificationError(
                    f"images[{image_id!r}].class_index: {image.class_index}, the benchmark has {reference.images[image_id][0]}"
                )
    try:
        plugin.check_views(reference, {image_id: tuple(image.views) for image_id, image in result.images.items()})
    except (SpurbenchError, ValueError, KeyError, IndexError) as exc:  # a malformed view name is the file's fault, in one line
        raise VerificationError(str(exc).strip("'\"")) from None
    if bench.num_positives != len(result.images):
        raise VerificationError(f"benchmark.num_positives: {bench.num_positives} but the file lists {len(result.images)} images")
    ids = result.row_ids()
    image_of = [image_id for image_id, image in result.images.items() for _ in image.views]
    views = [view for image in result.images.values() for view in image.views]
    class_index = np.array([result.images[i].class_index for i in image_of], dtype=np.int64)
    watched_classes = plugin.watched_classes(bench.label_space)
    floor = 1.0 / max(result.model.num_classes, 1)
    for head_name, head in result.heads.items():
        rows = head.rows
        for field, values in (("correct", rows.correct), ("prob", rows.prob), *((f"watched.{k}", v) for k, v in rows.watched.items())):
            if len(values) != len(ids):
                raise VerificationError(f"heads.{head_name}.rows.{field}: {len(values)} values for {len(ids)} rows")
        if set(rows.watched) != set(watched_classes):
            raise VerificationError(
                f"heads.{head_name}.rows.watched: {sorted(rows.watched)}, the benchmark watches {sorted(watched_classes)}"
            )
        for r, (prob, correct) in enumerate(zip(rows.prob, rows.correct)):
            if _impossible_for_softmax(prob, correct, floor):
                raise VerificationError(
                    f"heads.{head_name}.rows[{ids[r]!r}]: correct={correct} with probability {prob!r} of its class is impossible for a softmax over {result.model.num_classes} classes"
                )
        for name, index in watched_classes.items():  # a watched class's probability is one softmax with the class's
            for r, (value, prob, correct, k) in enumerate(zip(rows.watched[name], rows.prob, rows.correct, class_index.tolist())):
                same = k == index
                if (same and abs(value - prob) > TOLERANCE) or (not same and (value + prob > 1 + TOLERANCE or (value > 0.5 and correct))):
                    raise VerificationError(
                        f"heads.{head_name}.rows.watched.{name}[{ids[r]!r}]: P({name}) = {value!r} with P(class) = {prob!r}, correct={correct} is impossible for one softmax"
                    )
        if sorted(c.class_index for c in head.classes) != sorted(set(class_index.tolist())):
            raise VerificationError(
                f"heads.{head_name}.classes: classes {sorted(c.class_index for c in head.classes)} but images of {sorted(set(class_index.tolist()))}"
            )
        classes = [BenchmarkClass(index=c.class_index, name=c.class_name, group=c.group) for c in head.classes]
        table = ViewTable(
            image_ids=image_of,
            views=views,
            class_index=class_index,
            correct=np.array(rows.correct, dtype=bool),
            prob=np.array(rows.prob, dtype=np.float64),
            watched={k: np.array(v, dtype=np.float64) for k, v in rows.watched.items()},
            classes=classes,
        )
        if reference.groups is not None and any(reference.groups.get(c.class_index) != c.group for c in head.classes):
            bad = next(c for c in head.classes if reference.groups.get(c.class_index) != c.group)
            raise VerificationError(
                f"heads.{head_name}.classes (class {bad.class_index}).group: {bad.group!r}, the benchmark has {reference.groups.get(bad.class_index)!r}"
            )
        try:
            scores = plugin.view_metrics(table)
        except (ValueError, KeyError, IndexError) as exc:
            raise VerificationError(f"heads.{head_name}.rows: {str(exc).strip(chr(39))}") from None
        if set(scores.metrics) != set(head.metrics):
            raise VerificationError(f"heads.{head_name}.metrics: stored {sorted(head.metrics)}, recomputed {sorted(scores.metrics)}")
        for key, value in scores.metrics.items():
            if not _same(head.metrics[key], value):
                raise VerificationError(f"heads.{head_name}.metrics.{key}: stored {head.metrics[key]!r}, recomputed {value!r}")
        for i, row in enumerate(head.classes):
            expected = scores.classes.get(row.class_index, {})
            if set(expected) != set(row.metrics) or any(not _same(row.metrics[k], v) for k, v in expected.items()):
                key = next((k for k in sorted(set(expected) | set(row.metrics)) if not _same(row.metrics.get(k), expected.get(k))), "?")
                raise VerificationError(
                    f"heads.{head_name}.classes[{i}] (class {row.class_index}).metrics.{key}: stored {row.metrics.get(key)!r}, recomputed {expected.get(key)!r}"
                )


def _class_of(row) -> BenchmarkClass:
    return BenchmarkClass(
        index=row.class_index, name=row.class_name, components=tuple(row.components), group=row.group, feature=row.feature
    )


def verify_all(paths: list[Path]) -> list[AnyResult]:
    """Verify every file; raises at the first bad one."""
    if not paths:
        raise VerificationError("no result files to verify")
    return [verify_result(p) for p in paths]


__all__ = ["VerificationError", "benchmark_reference", "verify_all", "verify_result"]
