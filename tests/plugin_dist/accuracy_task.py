"""A third task from outside the spurbench package, and a benchmark that uses it: plain top-1 accuracy
on class images, with its own result file, verification, board section, headline and report tables.

Declared like any distribution's entry points (``spurbench_shapes-0.1.dist-info/entry_points.txt``):

    [spurbench.tasks]
    accuracy = accuracy_task:Accuracy
    [spurbench.benchmarks]
    shapes-accuracy = accuracy_task:ShapesAccuracy
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field
from rich.table import Table
from shapes_benchmark import CLASSES, _benchmark

from spurbench.benchmarks.base import Benchmark, BenchmarkOptions, BenchmarkPlugin, Reference
from spurbench.heads import PLAIN, class_probabilities
from spurbench.metrics import Unit
from spurbench.preprocessing import role_geometry
from spurbench.protocols import MODEL_TRANSFORM, fixed_paper, protocol_table
from spurbench.results import TaskResult, ViewProtocolInfo
from spurbench.schemas import Strict
from spurbench.tasks import BoardSection, Column, EvaluationContext, Headline, Task, TaskBoard, VerificationError, benchmark_info

TOLERANCE = 1e-9


class AccuracyHead(Strict):
    temperature: Annotated[float, Field(gt=0)]
    accuracy: Unit  # top-1 accuracy over the class images
    class_accuracy: dict[str, Unit]  # class index -> its images' top-1 accuracy
    image_top1: dict[str, bool]  # image id -> was its class the top-1 prediction


class AccuracyImage(Strict):
    class_index: int


class AccuracyResult(TaskResult):
    kind: Literal["accuracy"] = "accuracy"
    schema_version: Literal[1] = 1
    protocol: ViewProtocolInfo  # one geometry for every image
    heads: dict[str, AccuracyHead]
    images: dict[str, AccuracyImage]


def _scores(image_top1: dict[str, bool], images: dict[str, AccuracyImage]) -> tuple[float, dict[str, float]]:
    """Overall and per-class accuracy from the per-image top-1 flags (what evaluate records and verify recomputes)."""
    hits = np.array([image_top1[i] for i in images], dtype=float)
    classes = np.array([image.class_index for image in images.values()])
    return float(hits.mean()), {str(k): float(hits[classes == k].mean()) for k in sorted(set(classes.tolist()))}


class Accuracy(Task):
    name = "accuracy"
    description = "top-1 accuracy on the benchmark's class images"
    result_model = AccuracyResult

    def evaluate_features(self, context: EvaluationContext) -> AccuracyResult:
        bench, spec = context.benchmark, context.protocol
        images = {im.image_id: AccuracyImage(class_index=im.class_index) for im in bench.images}
        column = torch.tensor([context.columns[im.class_index] for im in bench.images], dtype=torch.long)
        heads = {}
        for name, head in context.heads.items():
            temperature = context.temperatures.get(name, 1.0)
            _, top1 = class_probabilities(head, context.features.features, column, temperature=temperature)
            image_top1 = {im.image_id: bool(t) for im, t in zip(bench.images, top1.numpy())}
            accuracy, per_class = _scores(image_top1, images)
            heads[name] = AccuracyHead(temperature=temperature, accuracy=accuracy, class_accuracy=per_class, image_top1=image_top1)
        return AccuracyResult(
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
            heads=heads,
            images=images,
            provenance=context.provenance,
            spufix=context.spufix,
        )

    def verify(self, result: AccuracyResult, reference: Reference, plugin: BenchmarkPlugin) -> None:
        expected = {i: k for i, (k, _) in (reference.images or {}).items()}
        if {i: image.class_index for i, image in result.images.items()} != expected:
            raise VerificationError(f"images: not the {len(expected)} class images of {reference.name} revision {reference.revision!r}")
        for name, head in result.heads.items():
            if head.image_top1.keys() != result.images.keys():
                raise VerificationError(f"heads.{name}.image_top1: not one flag per image")
            accuracy, per_class = _scores(head.image_top1, result.images)
            if abs(accuracy - head.accuracy) > TOLERANCE:
                raise VerificationError(f"heads.{name}.accuracy: stored {head.accuracy!r}, recomputed {accuracy!r}")
            if per_class.keys() != head.class_accuracy.keys() or any(
                abs(per_class[k] - head.class_accuracy[k]) > TOLERANCE for k in per_class
            ):
                raise VerificationError(f"heads.{name}.class_accuracy: stored {head.class_accuracy}, recomputed {per_class}")

    def headline_of(self, result: AccuracyResult) -> Headline:
        return Headline("accuracy", "top-1 accuracy", result.heads[PLAIN].accuracy)

    def worst_classes(self, result: AccuracyResult) -> list[int]:
        per_class = result.heads[PLAIN].class_accuracy
        return sorted((int(k) for k in per_class), key=lambda k: per_class[str(k)])

    def board(self, results: list[AccuracyResult], info: dict[str, dict]) -> TaskBoard:
        sections = []
        for name in sorted({r.benchmark.name for r in results}):
            mine = sorted((r for r in results if r.benchmark.name == name), key=lambda r: -r.heads[PLAIN].accuracy)
            rows = [
                {
                    "rank": rank,
                    "model": r.model.name,
                    "display_name": info.get(r.model.name, {}).get("display_name") or r.model.name,
                    "accuracy": r.heads[PLAIN].accuracy,
                }
                for rank, r in enumerate(mine, 1)
            ]
            columns = (Column("rank", "rank", digits=0), Column("display_name", "model", "model"), Column("accuracy", "top-1 accuracy"))
            legend = "**top-1 accuracy**: the share of class images whose class is the model's top-1 prediction."
            sections.append(BoardSection(name, mine[0].benchmark.revision, mine[0].protocol.name, columns, rows, legend=legend))
        return TaskBoard(sections)

    def summary_table(self, result: AccuracyResult) -> Table:
        table = Table(title=f"{result.model.name} on {result.benchmark.name}: top-1 accuracy")
        table.add_column("head")
        table.add_column("accuracy", justify="right")
        for name, head in result.heads.items():
            table.add_row(name, f"{head.accuracy:.3f}")
        return table

    def classes_table(self, result: AccuracyResult, n: int = 10, head: str = PLAIN) -> Table:
        table = Table(title=f"{n} classes lowest on accuracy ({head})")
        table.add_column("class")
        table.add_column("accuracy", justify="right")
        for k in self.worst_classes(result)[:n]:
            table.add_row(CLASSES[k], f"{result.heads[head].class_accuracy[str(k)]:.3f}")
        return table


def _class_images(limit: int | None = None) -> Benchmark:
    bench = _benchmark(limit=limit)
    bench.name = "shapes-accuracy"
    bench.images = [im for im in bench.images if im.role == "positive"]
    return bench


class ShapesAccuracy(BenchmarkPlugin):
    name = "shapes-accuracy"
    description = "the shapes benchmark's class images, scored for top-1 accuracy (a plugin task's test)"
    label_space = "shapes"
    default_models = ("shapesnet:tiny",)
    task = "accuracy"
    protocols = protocol_table(fixed_paper(1.0, by="images at the model's size"), MODEL_TRANSFORM)

    def load(self, options: BenchmarkOptions) -> Benchmark:
        return _class_images(self.parse_options(options).limit)

    def reference(self, revision: str) -> Reference | None:
        bench = _class_images()
        if revision != bench.revision:
            return None
        return Reference(self.name, revision, bench.checksum or "", {im.image_id: (im.class_index, im.role) for im in bench.images})
