"""The views task: every image of a benchmark seen in several views (clean, noised, watermarked, ...),
scored by its plugin's own metrics (a ``ScoresViews`` plugin), which ``leaderboard verify`` recomputes."""

from __future__ import annotations

from rich.table import Table

from spurbench.benchmarks.base import Benchmark, BenchmarkPlugin, Reference
from spurbench.benchmarks.capabilities import ScoresViews, require
from spurbench.heads import PLAIN
from spurbench.results import ModelInfo, ViewResult
from spurbench.tasks.board import TaskBoard
from spurbench.tasks.contract import EvaluationContext, Headline, Task
from spurbench.tasks.views.board import views_board
from spurbench.tasks.views.declared import headline_keys, metric_specs
from spurbench.tasks.views.report import view_classes_table, view_summary_table
from spurbench.tasks.views.scoring import views_result, watched_columns
from spurbench.tasks.views.verify import verify_views


class Views(Task):
    name = "views"
    description = "every image in several views (clean, noised, watermarked, ...), scored by its plugin's metrics"
    result_model = ViewResult
    capability = ScoresViews

    def check_run(self, benchmark: Benchmark, plugin: BenchmarkPlugin | None, model: ModelInfo) -> None:
        super().check_run(benchmark, plugin, model)
        watched_columns(benchmark, require(plugin, ScoresViews), model)  # a watched class the model cannot predict: before any feature

    def evaluate_features(self, context: EvaluationContext) -> ViewResult:
        return views_result(context, require(context.plugin, ScoresViews))

    def verify(self, result: ViewResult, reference: Reference, plugin: BenchmarkPlugin) -> None:
        verify_views(result, reference, require(plugin, ScoresViews))

    def headline_of(self, result: ViewResult) -> Headline:
        keys = headline_keys(result.benchmark.name)
        if keys is None:
            return Headline("-", "-", None, signed=True)
        key, low, high = keys
        metrics = result.heads[PLAIN].metrics
        header = spec.header if (spec := metric_specs(result.benchmark.name).get(key)) is not None else key
        return Headline(key, header, metrics.get(key), metrics.get(low) if low else None, metrics.get(high) if high else None, signed=True)

    def like_with_like(self, result: ViewResult) -> tuple[str, ...]:
        return tuple(sorted({v for image in result.images.values() for v in image.views}))  # e.g. the same noise levels

    def worst_classes(self, result: ViewResult) -> list[int]:
        keys = headline_keys(result.benchmark.name)
        key = keys[0] if keys is not None else ""
        classes = result.heads[PLAIN].classes
        return [c.class_index for c in sorted(classes, key=lambda c: (c.metrics.get(key) is None, c.metrics.get(key) or 0.0))]

    def board(self, results: list[ViewResult], info: dict[str, dict]) -> TaskBoard:
        return views_board(results, info)

    def summary_table(self, result: ViewResult) -> Table:
        return view_summary_table(result)

    def classes_table(self, result: ViewResult, n: int = 10, head: str = PLAIN) -> Table:
        return view_classes_table(result, n, head)


__all__ = ["Views"]
