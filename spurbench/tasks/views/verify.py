"""``leaderboard verify`` of a views result: its images and their views against the benchmark's
reference, every row's outputs for what one softmax can give, and every metric recomputed from the
rows by the plugin's own ``view_metrics``."""

from __future__ import annotations

import numpy as np

from spurbench.benchmarks.base import BenchmarkClass, Reference
from spurbench.benchmarks.capabilities import ScoresViews, implements
from spurbench.benchmarks.view_scoring import ViewTable
from spurbench.errors import SpurbenchError
from spurbench.metrics import TOLERANCE
from spurbench.results import ViewHeadResult, ViewResult
from spurbench.tasks.verification import VerificationError, check_image_ids, impossible_for_softmax, same


def verify_views(result: ViewResult, reference: Reference, plugin: ScoresViews) -> None:
    bench = result.benchmark
    if reference.images is not None:
        check_image_ids(reference, result.images)
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
    image_of = [image_id for image_id, image in result.images.items() for _ in image.views]
    class_index = np.array([result.images[i].class_index for i in image_of], dtype=np.int64)
    watched_classes = plugin.watched_classes(bench.label_space) if implements(plugin, "watched_classes") else {}
    for head_name, head in result.heads.items():
        _verify_rows(result, head_name, head, class_index, watched_classes)
        if sorted(c.class_index for c in head.classes) != sorted(set(class_index.tolist())):
            raise VerificationError(
                f"heads.{head_name}.classes: classes {sorted(c.class_index for c in head.classes)} but images of {sorted(set(class_index.tolist()))}"
            )
        classes = [BenchmarkClass(index=c.class_index, name=c.class_name, group=c.group) for c in head.classes]
        rows = head.rows
        table = ViewTable(
            image_ids=image_of,
            views=[view for image in result.images.values() for view in image.views],
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
            if not same(head.metrics[key], value):
                raise VerificationError(f"heads.{head_name}.metrics.{key}: stored {head.metrics[key]!r}, recomputed {value!r}")
        for i, row in enumerate(head.classes):
            expected = scores.classes.get(row.class_index, {})
            if set(expected) != set(row.metrics) or any(not same(row.metrics[k], v) for k, v in expected.items()):
                key = next((k for k in sorted(set(expected) | set(row.metrics)) if not same(row.metrics.get(k), expected.get(k))), "?")
                raise VerificationError(
                    f"heads.{head_name}.classes[{i}] (class {row.class_index}).metrics.{key}: stored {row.metrics.get(key)!r}, recomputed {expected.get(key)!r}"
                )


def _verify_rows(
    result: ViewResult, head_name: str, head: ViewHeadResult, class_index: np.ndarray, watched_classes: dict[str, int]
) -> None:
    """Every row's outputs: one value per row, the watched classes the benchmark watches, and nothing
    one softmax over the model's classes cannot give."""
    ids = result.row_ids()
    floor = 1.0 / max(result.model.num_classes, 1)
    rows = head.rows
    fields: list[tuple[str, list]] = [
        ("correct", rows.correct),
        ("prob", rows.prob),
        *((f"watched.{k}", v) for k, v in rows.watched.items()),
    ]
    for field, values in fields:
        if len(values) != len(ids):
            raise VerificationError(f"heads.{head_name}.rows.{field}: {len(values)} values for {len(ids)} rows")
    if set(rows.watched) != set(watched_classes):
        raise VerificationError(f"heads.{head_name}.rows.watched: {sorted(rows.watched)}, the benchmark watches {sorted(watched_classes)}")
    for r, (prob, correct) in enumerate(zip(rows.prob, rows.correct)):
        if impossible_for_softmax(prob, correct, floor):
            raise VerificationError(
                f"heads.{head_name}.rows[{ids[r]!r}]: correct={correct} with probability {prob!r} of its class is impossible for a softmax over {result.model.num_classes} classes"
            )
    for name, index in watched_classes.items():  # a watched class's probability is one softmax with the class's
        for r, (value, prob, correct, k) in enumerate(zip(rows.watched[name], rows.prob, rows.correct, class_index.tolist())):
            same_class = k == index
            if (same_class and abs(value - prob) > TOLERANCE) or (
                not same_class and (value + prob > 1 + TOLERANCE or (value > 0.5 and correct))
            ):
                raise VerificationError(
                    f"heads.{head_name}.rows.watched.{name}[{ids[r]!r}]: P({name}) = {value!r} with P(class) = {prob!r}, correct={correct} is impossible for one softmax"
                )


__all__ = ["verify_views"]
