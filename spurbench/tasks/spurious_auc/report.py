"""What ``spurbench run`` prints of a spurious-AUC result: the metrics per head, and the worst classes."""

from __future__ import annotations

from rich.table import Table

from spurbench.heads import PLAIN
from spurbench.results import Aggregate, Result


def _input_sizes(result: Result) -> str:
    sizes = {role: "x".join(map(str, g.input_size[1:])) for role, g in result.protocol.images.items()}
    return sizes["positive"] if len(set(sizes.values())) == 1 else f"class images {sizes['positive']}, spurious {sizes['negative']}"


def _opt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ci(a: Aggregate) -> str:
    return f"{a.mauc:.3f}" + ("" if a.mauc_ci_low is None else f" [{a.mauc_ci_low:.3f}, {a.mauc_ci_high:.3f}]")


def summary_table(result: Result) -> Table:
    """One column per head, one row per metric; each row label says what the number is."""
    temperatures = ", ".join(f"{name} T={head.temperature:g}" for name, head in result.heads.items() if head.temperature != 1.0)
    table = Table(
        title=f"{result.model.name} on {result.benchmark.name} (protocol {result.protocol.name}, {_input_sizes(result)} px"
        + (f", {temperatures}" if temperatures else "")
        + ")",
        title_justify="left",
        caption="mAUC: mean class-wise ROC-AUC, the paper's definition. AP: average precision, what the "
        "authors' code computes and Table 2 prints.",
        caption_justify="left",
    )
    table.add_column("metric")
    for name in result.heads:
        table.add_column(name, justify="right", no_wrap=True)
    aggregates = [head.aggregate for head in result.heads.values()]
    rows = [
        ("mAUC (ROC-AUC) [95% CI]", _ci),
        ('mean AP (Table 2\'s "mAUC")', lambda a: f"{a.mean_ap:.3f}"),
        ("pooled AUC (ROC)", lambda a: f"{a.pooled_auc:.3f}"),
        ("pooled AP (authors' joint)", lambda a: f"{a.pooled_ap:.3f}"),
        ("accuracy (class images)", lambda a: f"{a.accuracy:.3f}"),
        ("spurious → class rate", lambda a: f"{a.spurious_pred_rate:.3f}"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(a) for a in aggregates))
    extra = sorted({name for head in result.heads.values() for name in head.extra_metrics})
    for name in extra:  # the benchmark's own metrics, e.g. the mean AUC of each class group
        table.add_row(
            name.replace("mauc_", "mAUC, classes: ") if name.startswith("mauc_") else name,
            *(_opt(head.extra_metrics.get(name)) for head in result.heads.values()),
        )
    return table


def worst_classes_table(result: Result, n: int = 10, head: str = PLAIN) -> Table:
    rows = sorted(result.heads[head].classes, key=lambda c: c.auc)[:n]
    others = [name for name in result.heads if name != head]  # e.g. the SpuFix head, shown next to it
    other_auc = {name: {c.class_index: c.auc for c in result.heads[name].classes} for name in others}
    # "recall", not "val→k": a class's own images are ImageNet val on some benchmarks, a generated test split or a folder on others
    table = Table(
        title=f"{n} worst classes ({head})",
        title_justify="left",
        caption_justify="left",
        caption="spurious→k: spurious-only images predicted as the class k; recall: the class's own images predicted as k.",
    )
    grouped = any(c.group is not None for c in rows)
    for col in (
        "class",
        "name",
        "AUC",
        *(f"AUC {name}" for name in others),
        "AP",
        "spurious→k",
        "recall",
        *(("group",) if grouped else ()),
    ):
        table.add_column(col, no_wrap=True)  # numbers must never be cut; the feature text is in the result file
    for c in rows:
        table.add_row(
            str(c.class_index),
            c.class_name,
            f"{c.auc:.3f}",
            *(f"{other_auc[name][c.class_index]:.3f}" for name in others),
            f"{c.ap:.3f}",
            f"{c.spurious_pred_rate:.2f}",
            f"{c.val_pred_rate:.2f}",
            *((c.group or "",) if grouped else ()),
        )
    return table


__all__ = ["summary_table", "worst_classes_table"]
