"""Heads on features: per head, the class probabilities of every image and the metrics a result
records. Spurious-AUC benchmarks get the standard class metrics (``score_heads``); views benchmarks
their plugin's own, from one row per (image, view) (``score_view_heads``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spurbench.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from spurbench.benchmarks.base import ROLES, BenchmarkPlugin, ViewTable, group_mauc, images_by_class
from spurbench.errors import DataError
from spurbench.features import FeatureSet, row_ids
from spurbench.heads import class_probabilities, probabilities_with
from spurbench.metrics import ClassScores, aggregate_metrics, class_metrics
from spurbench.results import Aggregate, ClassRow, HeadResult, ViewClassRow, ViewHeadResult, ViewRows


def plugin_of(benchmark: Benchmark) -> BenchmarkPlugin | None:
    """The registered plugin a benchmark came from, None for a benchmark built in code."""
    name = benchmark.plugin or benchmark.name
    return get_benchmark(name) if name in BENCHMARKS.names() else None


def score_heads(
    benchmark: Benchmark,
    features: FeatureSet,
    columns: dict[int, int],
    heads: dict[str, nn.Module],
    bootstrap: int,
    temperatures: dict[str, float] | None = None,
) -> dict[str, HeadResult]:
    """Score every head on the same features and compute per-class and aggregate metrics.

    ``temperatures``: head name -> T; that head's logits are divided by T before the softmax (default 1).
    """
    temperatures = temperatures or {}
    images = benchmark.images
    column_per_image = torch.tensor([columns[im.class_index] for im in images], dtype=torch.long)
    by_class = images_by_class([(im.class_index, im.role) for im in images])
    for cls in benchmark.classes:
        roles = by_class.get(cls.index)
        if roles is None or not all(len(roles[role]) for role in ROLES):
            raise DataError(f"benchmark class {cls.index} ({cls.name}) needs both class images and spurious-only images")
    plugin = plugin_of(benchmark)
    extra_metrics = plugin.extra_metrics if plugin is not None else group_mauc

    out: dict[str, HeadResult] = {}
    for head_name, head in heads.items():
        temperature = temperatures.get(head_name, 1.0)
        prob, top1 = class_probabilities(head, features.features, column_per_image, temperature=temperature)
        prob_np, top1_np = prob.numpy(), top1.numpy()
        if not np.isfinite(prob_np).all():
            bad = images[int(np.flatnonzero(~np.isfinite(prob_np))[0])]
            raise DataError(f"head {head_name!r} gives a non-finite probability (NaN or inf) for image {bad.origin}")
        per_class: list[ClassScores] = []
        rows: list[ClassRow] = []
        for cls in benchmark.classes:
            pos, neg = by_class[cls.index]["positive"], by_class[cls.index]["negative"]
            scores = ClassScores(cls.index, prob_np[pos], prob_np[neg], top1_np[pos], top1_np[neg])
            per_class.append(scores)
            rows.append(
                ClassRow(
                    **class_metrics(scores).model_dump(),  # the declared metrics, typed
                    class_index=cls.index,
                    class_name=cls.name,
                    components=list(cls.components),
                    group=cls.group,
                    feature=cls.feature,
                    num_positives=len(pos),
                    num_negatives=len(neg),
                )
            )
        out[head_name] = HeadResult(
            temperature=temperature,
            aggregate=Aggregate(**aggregate_metrics(per_class, draws=bootstrap).model_dump(), bootstrap_draws=bootstrap),
            extra_metrics=extra_metrics(benchmark.classes, [row.auc for row in rows]),
            classes=rows,
            image_prob={im.image_id: float(p) for im, p in zip(images, prob_np)},
            image_top1={im.image_id: bool(t) for im, t in zip(images, top1_np)},
        )
    return out


def view_table(
    benchmark: Benchmark,
    features: FeatureSet,
    columns: dict[int, int],
    watched: dict[str, int],
    head: nn.Module,
    temperature: float = 1.0,
) -> ViewTable:
    """One head's outputs on every row of a views benchmark (see ``ViewTable``); ``watched``: name -> model column."""
    rows = benchmark.view_rows()
    if [rid for image in benchmark.images for rid in row_ids(benchmark, image)] != features.image_ids:
        raise DataError(f"features of {benchmark.name} do not list its view rows")  # a cache of another layout
    images = benchmark.images
    class_index = np.array([images[i].class_index for i, _ in rows], dtype=np.int64)
    column = torch.tensor([columns[int(k)] for k in class_index], dtype=torch.long)
    prob, correct, seen = probabilities_with(head, features.features, column, list(watched.values()), temperature=temperature)
    watched_prob = {name: seen[:, j].numpy() for j, name in enumerate(watched)}
    if not np.isfinite(prob.numpy()).all():
        bad = features.image_ids[int(np.flatnonzero(~np.isfinite(prob.numpy()))[0])]
        raise DataError(f"a head gives a non-finite probability (NaN or inf) for {bad}")
    return ViewTable(
        image_ids=[images[i].image_id for i, _ in rows],
        views=[v for _, v in rows],
        class_index=class_index,
        correct=correct.numpy(),
        prob=prob.numpy(),
        watched=watched_prob,
        classes=list(benchmark.classes),
    )


def score_view_heads(
    benchmark: Benchmark,
    plugin: BenchmarkPlugin,
    features: FeatureSet,
    columns: dict[int, int],
    watched: dict[str, int],
    heads: dict[str, nn.Module],
    temperatures: dict[str, float] | None = None,
) -> dict[str, ViewHeadResult]:
    """Every head on the same view rows, scored by the plugin's ``view_metrics``."""
    temperatures = temperatures or {}
    out: dict[str, ViewHeadResult] = {}
    for head_name, head in heads.items():
        temperature = temperatures.get(head_name, 1.0)
        table = view_table(benchmark, features, columns, watched, head, temperature)
        scores = plugin.view_metrics(table)
        out[head_name] = ViewHeadResult(
            temperature=temperature,
            metrics=scores.metrics,
            classes=[
                ViewClassRow(class_index=c.index, class_name=c.name, group=c.group, metrics=scores.classes.get(c.index, {}))
                for c in benchmark.classes
            ],
            rows=ViewRows(
                correct=table.correct.tolist(), prob=table.prob.tolist(), watched={k: v.tolist() for k, v in table.watched.items()}
            ),
        )
    return out


__all__ = ["plugin_of", "score_heads", "score_view_heads", "view_table"]
