"""A views benchmark from features: one row per (image, view), per head the outputs of every row, and
the plugin's metrics from them (``ScoresViews.view_metrics``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spurbench.benchmarks.base import Benchmark
from spurbench.benchmarks.capabilities import ScoresViews, implements
from spurbench.benchmarks.view_scoring import ViewTable
from spurbench.errors import DataError
from spurbench.features import FeatureSet, row_ids
from spurbench.heads import probabilities_with
from spurbench.label_spaces import class_columns
from spurbench.preprocessing import role_geometry
from spurbench.results import ModelInfo, ViewClassRow, ViewHeadResult, ViewImage, ViewProtocolInfo, ViewResult, ViewRows
from spurbench.tasks.common import benchmark_info
from spurbench.tasks.contract import EvaluationContext


def watched_columns(benchmark: Benchmark, plugin: ScoresViews, model: ModelInfo) -> dict[str, int]:
    """The plugin's watched classes (name -> the model's output column; none where it defines no
    ``watched_classes``); a one-line error for one the model does not predict."""
    watched = plugin.watched_classes(benchmark.label_space) if implements(plugin, "watched_classes") else {}
    return dict(zip(watched, class_columns(benchmark.label_space, model.label_space, list(watched.values()), model.num_classes)))


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
    plugin: ScoresViews,
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


def views_result(context: EvaluationContext, plugin: ScoresViews) -> ViewResult:
    """The result file of a views benchmark."""
    bench, spec = context.benchmark, context.protocol
    watched = watched_columns(bench, plugin, context.model)
    return ViewResult(
        config_hash=context.config_hash,
        model=context.model,
        benchmark=benchmark_info(bench),
        protocol=ViewProtocolInfo(
            name=spec.name,
            description=spec.describe(),
            declared=spec,
            precision=context.precision,
            **role_geometry(context.data_config, spec, "positive"),
        ),
        heads=score_view_heads(bench, plugin, context.features, context.columns, watched, context.heads, context.temperatures),
        images={im.image_id: ViewImage(class_index=im.class_index, views=list(im.views)) for im in bench.images},
        provenance=context.provenance,
        spufix=context.spufix,
    )


__all__ = ["score_view_heads", "view_table", "views_result", "watched_columns"]
