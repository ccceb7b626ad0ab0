"""Spurious AUC from features: per head, the probability of its class for every class image and
spurious-only image, the standard class metrics, and the plugin's extra metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spurbench.benchmarks.base import ROLES, Benchmark, BenchmarkPlugin, images_by_class
from spurbench.benchmarks.capabilities import extra_metrics_of
from spurbench.errors import DataError
from spurbench.features import FeatureSet
from spurbench.heads import class_probabilities
from spurbench.metrics import ClassScores, aggregate_metrics, class_metrics
from spurbench.preprocessing import role_geometry
from spurbench.results import Aggregate, ClassRow, HeadResult, ImageRecord, ProtocolInfo, Result, RoleGeometry
from spurbench.tasks.catalog import plugin_of
from spurbench.tasks.common import benchmark_info
from spurbench.tasks.contract import EvaluationContext


def score_heads(
    benchmark: Benchmark,
    features: FeatureSet,
    columns: dict[int, int],
    heads: dict[str, nn.Module],
    bootstrap: int,
    temperatures: dict[str, float] | None = None,
    plugin: BenchmarkPlugin | None = None,
) -> dict[str, HeadResult]:
    """Score every head on the same features and compute per-class and aggregate metrics.

    ``temperatures``: head name -> T; that head's logits are divided by T before the softmax (default 1).
    ``plugin``: whose extra metrics each head records (default: the benchmark's registered plugin).
    """
    temperatures = temperatures or {}
    images = benchmark.images
    column_per_image = torch.tensor([columns[im.class_index] for im in images], dtype=torch.long)
    by_class = images_by_class([(im.class_index, im.role) for im in images])
    for cls in benchmark.classes:
        roles = by_class.get(cls.index)
        if roles is None or not all(len(roles[role]) for role in ROLES):
            raise DataError(f"benchmark class {cls.index} ({cls.name}) needs both class images and spurious-only images")
    plugin = plugin if plugin is not None else plugin_of(benchmark)
    extra_metrics = extra_metrics_of(plugin)

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


def spurious_auc_result(context: EvaluationContext) -> Result:
    """The result file of a spurious-AUC benchmark."""
    bench, spec = context.benchmark, context.protocol
    return Result(
        config_hash=context.config_hash,
        model=context.model,
        benchmark=benchmark_info(bench),
        protocol=ProtocolInfo(
            name=spec.name,
            description=spec.describe(),
            declared=spec,
            images={role: RoleGeometry(**role_geometry(context.data_config, spec, role)) for role in ROLES},
            precision=context.precision,
        ),
        heads=score_heads(bench, context.features, context.columns, context.heads, context.bootstrap, context.temperatures, context.plugin),
        images={im.image_id: ImageRecord(class_index=im.class_index, role=im.role, component=im.component) for im in bench.images},
        provenance=context.provenance,
        spufix=context.spufix,
    )


__all__ = ["score_heads", "spurious_auc_result"]
