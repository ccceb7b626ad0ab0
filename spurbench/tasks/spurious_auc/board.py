"""The spurious-AUC part of the board: one section per benchmark (models ranked by mAUC, the paper's
figures beside the measured ones, the accuracy-vs-mAUC and class-AUC plots, each model's worst
classes), and the board's CSV rows. Every number comes from a verified result, except the columns
labelled *paper*, from the model lists (``paper:`` of an entry)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from markupsafe import Markup

from spurbench.files import slug
from spurbench.heads import PLAIN, SPUFIX
from spurbench.results import Result
from spurbench.tasks.board import BoardSection, Column, ModelPart, TaskBoard, fmt, missing
from spurbench.tasks.spurious_auc.figures import figure_bytes, heatmap_figure, scatter_figure

WORST_CLASSES = 10


def _ci(row: Mapping) -> str:
    """mAUC with its bootstrap interval, when the result has one."""
    return fmt(row["mauc"]) if missing(row["mauc_ci_low"]) else f"{row['mauc']:.3f} [{row['mauc_ci_low']:.3f}, {row['mauc_ci_high']:.3f}]"


BOARD_COLUMNS = (
    Column("rank", "rank", digits=0),
    Column("display_name", "model", "model"),
    Column("data_group", "data", "text"),
    Column("accuracy", "acc."),
    Column("mauc", "mAUC (ROC-AUC) [95% CI]", show=_ci),
    Column("mauc_spufix", "mAUC SpuFix"),
    Column("spufix_gain", "gain", signed=True),
    Column("mean_ap", "mean AP"),
    Column("mean_ap_spufix", "mean AP SpuFix"),
    Column("paper_mean_ap", "mean AP paper", paper=True),
    Column("mean_ap_minus_paper", "AP − paper", signed=True, paper=True),
    Column("paper_mean_ap_spufix", "AP SpuFix paper", paper=True),
    Column("mean_ap_spufix_minus_paper", "AP SpuFix − paper", signed=True, paper=True),
)
# A model's worst classes (page only); the group column only where the benchmark groups its classes.
WORST_COLUMNS = (
    Column("class_index", "class", digits=0),
    Column("class_name", "name", "text"),
    Column("auc", "AUC"),
    Column("feature", "spurious feature", "text"),
    Column("spurious_pred_rate", "spurious images classified as the class", show=lambda row: f"{row['spurious_pred_rate']:.0%}"),
)
GROUP_COLUMN = Column("group", "group", "text")  # shown after the class name
# With a SpuFix head: the features its artifact clips in the class (by the names people gave them) and the class's AUC with it
SPUFIX_COLUMNS = (
    Column("auc_spufix", "AUC SpuFix"),
    Column("spufix_clips", "SpuFix clips", "text"),
)


def paper_comparison(result: Result, paper: dict | None) -> dict[str, float | None]:
    """The paper's figures for this result, compared like with like.

    The paper's Table 2 "mAUC" is, in the authors' code, mean average precision; so it is set against
    the measured ``mean_ap`` (plain and SpuFix), never against the ROC-AUC ``mauc``. Paper figures are
    shown only for the benchmark they are for, and a measured − paper difference only for results
    produced under the paper's protocol (``--protocol paper``).
    """
    empty: dict[str, float | None] = {
        "paper_mean_ap": None,
        "paper_mean_ap_spufix": None,
        "mean_ap_minus_paper": None,
        "mean_ap_spufix_minus_paper": None,
    }
    if not paper or paper.get("benchmark") != result.benchmark.name:
        return empty
    out = {**empty, "paper_mean_ap": paper.get("mean_ap"), "paper_mean_ap_spufix": paper.get("mean_ap_spufix")}
    if result.protocol.name != "paper":
        return out
    if out["paper_mean_ap"] is not None:
        out["mean_ap_minus_paper"] = result.heads[PLAIN].aggregate.mean_ap - out["paper_mean_ap"]
    if out["paper_mean_ap_spufix"] is not None and SPUFIX in result.heads:
        out["mean_ap_spufix_minus_paper"] = result.heads[SPUFIX].aggregate.mean_ap - out["paper_mean_ap_spufix"]
    return out


def board_table(results: list[Result], info: dict[str, dict]) -> pd.DataFrame:
    """One row per (benchmark, model), ranked by mAUC within each benchmark; ``info``: model name -> model-list facts."""
    rows = []
    for r in results:
        plain = r.heads[PLAIN].aggregate
        fixed = r.heads[SPUFIX].aggregate if SPUFIX in r.heads else None
        reg = info.get(r.model.name, {})
        rows.append(
            {
                "benchmark": r.benchmark.name,
                "benchmark_revision": r.benchmark.revision,
                "model": r.model.name,
                "display_name": reg.get("display_name") or r.model.name,
                "data_group": reg.get("data") or "unknown",
                "accuracy": plain.accuracy,
                "mauc": plain.mauc,
                "mauc_ci_low": plain.mauc_ci_low,
                "mauc_ci_high": plain.mauc_ci_high,
                "mean_ap": plain.mean_ap,
                "pooled_auc": plain.pooled_auc,
                "pooled_ap": plain.pooled_ap,
                "mauc_spufix": fixed.mauc if fixed else None,
                "spufix_gain": (fixed.mauc - plain.mauc) if fixed else None,
                "mean_ap_spufix": fixed.mean_ap if fixed else None,
                "accuracy_spufix": fixed.accuracy if fixed else None,
                **paper_comparison(r, reg.get("paper")),
                "protocol": r.protocol.name,
                "input_size": "x".join(str(v) for v in r.protocol.images["positive"].input_size[1:]),
                "temperature": r.heads[PLAIN].temperature,
                "spurbench_version": r.provenance.spurbench_version,
                "date": r.provenance.date,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["benchmark", "mauc"], ascending=[True, False], kind="stable")
    table.insert(0, "rank", table.groupby("benchmark").cumcount() + 1)
    return table.reset_index(drop=True)


def _worst_classes(row: Mapping, result: Result) -> ModelPart:
    """A model's worst-classes table (plain head, lowest AUC first)."""
    names = result.benchmark.component_names  # when the benchmark knows what its components are
    classes = result.heads[PLAIN].classes
    fixed = {c.class_index: c.auc for c in result.heads[SPUFIX].classes} if SPUFIX in result.heads else {}
    rows = []
    for c in sorted(classes, key=lambda c: c.auc)[:WORST_CLASSES]:
        shown = [names.get(str(k), f"component {k}") for k in c.components]
        feature = c.feature or ((("other classes' features: " if names else "") + ", ".join(shown)) if shown else "–")
        named = result.benchmark.class_component_names.get(str(c.class_index), {})  # what people called this class's features
        if named:
            feature = ", ".join(f"{named[str(k)]} (component {k})" if str(k) in named else f"component {k}" for k in c.components)
        rows.append(
            {
                "class_index": c.class_index,
                "class_name": c.class_name,
                "group": c.group,
                "auc": c.auc,
                "feature": feature,
                "spurious_pred_rate": c.spurious_pred_rate,
                "auc_spufix": fixed.get(c.class_index),
                "spufix_clips": ", ".join(result.spufix.names_of(c.class_index) if result.spufix else []) or "–",
            }
        )
    grouped = any(c.group is not None for c in classes)
    columns: tuple[Column, ...] = WORST_COLUMNS[:2] + (GROUP_COLUMN,) + WORST_COLUMNS[2:] if grouped else WORST_COLUMNS
    if fixed:  # (a result written before results named their artifact has the AUC, not the clipped features)
        columns += SPUFIX_COLUMNS if result.spufix is not None else SPUFIX_COLUMNS[:1]
    return ModelPart(row, columns, rows)


def spurious_auc_board(results: list[Result], info: dict[str, dict]) -> TaskBoard:
    """Per benchmark its ranked section with plots (PNG files beside the Markdown board, SVG inline on
    the page) and each model's worst classes; the board's CSV rows."""
    table = board_table(results, info)
    by_key = {(r.benchmark.name, r.model.name): r for r in results}
    files: dict[str, bytes] = {}
    sections = []
    for benchmark, part in table.groupby("benchmark", sort=True) if not table.empty else []:
        figures, pngs = {}, []
        for kind, fig in (("scatter", scatter_figure(table, benchmark)), ("heatmap", heatmap_figure(results, table, benchmark))):
            name = f"{kind}-{slug(benchmark)}"
            files[f"{name}.png"] = figure_bytes(fig, "png")
            svg = figure_bytes(fig, "svg", name).decode()
            figures[name] = Markup(svg[svg.index("<svg") :])  # our own matplotlib output
            pngs.append(f"{name}.png")
        rows = [row for _, row in part.iterrows()]
        sections.append(
            BoardSection(
                name=benchmark,
                revision=rows[0]["benchmark_revision"],
                protocol=rows[0]["protocol"],
                columns=BOARD_COLUMNS,
                rows=rows,
                filterable=True,
                figures=figures,
                pngs=pngs,
                models=[_worst_classes(row, by_key[(benchmark, row["model"])]) for row in rows],
            )
        )
    return TaskBoard(sections, table, files)


__all__ = ["BOARD_COLUMNS", "board_table", "paper_comparison", "spurious_auc_board"]
