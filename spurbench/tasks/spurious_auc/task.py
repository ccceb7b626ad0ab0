"""The spurious-AUC task: a benchmark's class images against its spurious-only images, ranked by the
probability of the class (mean class-wise ROC-AUC, the paper's spurious score, and the standard metrics)."""

from __future__ import annotations

from rich.table import Table

from spurbench.benchmarks.base import Benchmark, BenchmarkPlugin, Reference
from spurbench.errors import DataError
from spurbench.heads import PLAIN
from spurbench.results import ModelInfo, Result
from spurbench.tasks.board import TaskBoard
from spurbench.tasks.contract import EvaluationContext, Headline, Task
from spurbench.tasks.spurious_auc.report import summary_table, worst_classes_table
from spurbench.tasks.spurious_auc.scoring import spurious_auc_result
from spurbench.tasks.spurious_auc.verify import verify_spurious_auc

LEGEND = (
    "**mAUC** is the mean over classes of the ROC-AUC separating a class's own images from its "
    "spurious-only images, ranked by the softmax probability of the class: the paper's definition of "
    "the spurious score. **mean AP** is the mean over classes of the average precision of the same "
    "ranking: the number the authors' code computes and the paper's Table 2 prints under the name "
    '"mAUC". Paper figures (*paper*) are therefore compared with the measured mean AP, never with '
    "the ROC-AUC; the *AP − paper* cells exist only for results produced under the paper's protocol "
    "(`--protocol paper`). **gain** is mAUC after SpuFix minus mAUC plain; **acc.** is top-1 accuracy "
    "on the benchmark's class images."
)


class SpuriousAUC(Task):
    name = "spurious-auc"
    description = "class images against spurious-only images: mean class-wise ROC-AUC and the standard metrics"
    result_model = Result
    legend = LEGEND
    board_files = ("scatter-*.png", "heatmap-*.png")

    def check_run(self, benchmark: Benchmark, plugin: BenchmarkPlugin | None, model: ModelInfo) -> None:
        super().check_run(benchmark, plugin, model)
        if benchmark.render_views is not None:
            raise DataError(f"benchmark {benchmark.name} renders views but no registered views plugin scores it")

    def evaluate_features(self, context: EvaluationContext) -> Result:
        return spurious_auc_result(context)

    def verify(self, result: Result, reference: Reference, plugin: BenchmarkPlugin) -> None:
        verify_spurious_auc(result, reference, plugin)

    def headline_of(self, result: Result) -> Headline:
        a = result.heads[PLAIN].aggregate
        return Headline("mAUC", "mAUC [95% CI]", a.mauc, a.mauc_ci_low, a.mauc_ci_high)

    def worst_classes(self, result: Result) -> list[int]:
        return [c.class_index for c in sorted(result.heads[PLAIN].classes, key=lambda c: c.auc)]

    def board(self, results: list[Result], info: dict[str, dict]) -> TaskBoard:
        # lazy: matplotlib (the board's plots) loads when a board is built, not whenever a result file is read
        from spurbench.tasks.spurious_auc.board import spurious_auc_board

        return spurious_auc_board(results, info)

    def summary_table(self, result: Result) -> Table:
        return summary_table(result)

    def classes_table(self, result: Result, n: int = 10, head: str = PLAIN) -> Table:
        return worst_classes_table(result, n, head)


__all__ = ["LEGEND", "SpuriousAUC"]
