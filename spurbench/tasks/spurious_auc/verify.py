"""``leaderboard verify`` of a spurious-AUC result: its images against the benchmark's reference, every
probability for what a softmax can give, and every per-class and aggregate metric (the bootstrap CI
included, same seed) recomputed from ``image_prob`` / ``image_top1`` with the code ``evaluate`` uses."""

from __future__ import annotations

import numpy as np

from spurbench.benchmarks.base import ROLES, BenchmarkClass, BenchmarkPlugin, Reference, images_by_class
from spurbench.benchmarks.capabilities import extra_metrics_of
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
from spurbench.results import ClassRow, Result
from spurbench.tasks.verification import VerificationError, check_image_ids, impossible_for_softmax, limit_hint


def verify_spurious_auc(result: Result, reference: Reference, plugin: BenchmarkPlugin) -> None:
    _verify_images(result, reference)
    for head_name in result.heads:
        draws = result.heads[head_name].aggregate.bootstrap_draws
        if not 0 <= draws <= MAX_BOOTSTRAP_DRAWS:
            raise VerificationError(f"heads.{head_name}.aggregate.bootstrap_draws: {draws}, accepted 0..{MAX_BOOTSTRAP_DRAWS}")
        _verify_head(result, head_name, plugin)


def _verify_images(result: Result, reference: Reference) -> None:
    images = result.images
    if reference.images is not None:
        check_image_ids(reference, images)
        for image_id, (class_index, role) in reference.images.items():
            if (images[image_id].class_index, images[image_id].role) != (class_index, role):
                raise VerificationError(f"images[{image_id!r}]: class/role do not match the benchmark")
    else:
        grouped = images_by_class([(r.class_index, r.role) for r in images.values()])
        if len(grouped) != reference.num_classes:
            raise VerificationError(f"images: {len(grouped)} classes, {reference.name} has {reference.num_classes}")
        expected = {"positive": reference.positives_per_class, "negative": reference.negatives_per_class}
        held = {(k, role): len(rows[role]) for k, rows in grouped.items() for role in ROLES}
        hint = limit_hint({(k, role): int(expected[role] or 0) for k in grouped for role in ROLES}, held)
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
            if top1 is not None and impossible_for_softmax(prob, top1, floor):
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


def _verify_head(result: Result, head_name: str, plugin: BenchmarkPlugin) -> None:
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
    again = aggregate_metrics(per_class, draws=aggregate.bootstrap_draws)
    for field, stored, value in differences(HeadMetrics.model_validate(aggregate, from_attributes=True), again):
        raise VerificationError(f"heads.{head_name}.aggregate.{field}: stored {stored!r}, recomputed {value!r}")
    classes = [_class_of(row) for row in head.classes]
    extra = extra_metrics_of(plugin)(classes, [row.auc for row in head.classes])
    if set(extra) != set(head.extra_metrics) or any(abs(extra[k] - head.extra_metrics[k]) > TOLERANCE for k in extra):
        raise VerificationError(f"heads.{head_name}.extra_metrics: stored {head.extra_metrics}, recomputed {extra}")


def _class_of(row: ClassRow) -> BenchmarkClass:
    return BenchmarkClass(
        index=row.class_index, name=row.class_name, components=tuple(row.components), group=row.group, feature=row.feature
    )


__all__ = ["verify_spurious_auc"]
