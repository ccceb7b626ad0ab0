"""Rich tables for the terminal, built from a Result (what ``spurbench run`` prints at the end)."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from spurbench.results import Result


def summary_table(result: Result) -> Table:
    table = Table(title=f"{result.model.name} on {result.benchmark.name}", title_justify="left")
    for col in ("head", "mAUC [95% CI]", "mean AP", "pooled AUC", "accuracy", "spurious→k"):
        table.add_column(col, justify="right" if col != "head" else "left")
    planted = any(c.planted is not None for c in next(iter(result.heads.values())).classes)
    if planted:
        table.add_column("AUC planted / control", justify="right")
    for name, head in result.heads.items():
        a = head.aggregate
        row = [
            name,
            f"{a.mauc:.3f}" + ("" if a.mauc_ci_low is None else f" [{a.mauc_ci_low:.3f}, {a.mauc_ci_high:.3f}]"),
            f"{a.mean_ap:.3f}",
            f"{a.pooled_auc:.3f}",
            f"{a.accuracy:.3f}",
            f"{a.spurious_pred_rate:.3f}",
        ]
        if planted:
            p = [c.auc for c in head.classes if c.planted]
            c = [c.auc for c in head.classes if c.planted is False]
            row.append(f"{np.mean(p):.3f} / {np.mean(c):.3f}" if p and c else "-")
        table.add_row(*row)
    return table


def worst_classes_table(result: Result, n: int = 10, head: str = "plain") -> Table:
    rows = sorted(result.heads[head].classes, key=lambda c: c.auc)[:n]
    others = [name for name in result.heads if name != head]  # e.g. the SpuFix head, shown next to it
    other_auc = {name: {c.class_index: c.auc for c in result.heads[name].classes} for name in others}
    table = Table(title=f"{n} worst classes ({head})", title_justify="left")
    for col in ("class", "name", "AUC", *(f"AUC {name}" for name in others), "AP", "spurious→k", "val→k", "planted"):
        table.add_column(col, no_wrap=True)  # numbers must never be cut; the planted feature is in the result file
    for c in rows:
        table.add_row(
            str(c.class_index),
            c.class_name,
            f"{c.auc:.3f}",
            *(f"{other_auc[name][c.class_index]:.3f}" for name in others),
            f"{c.ap:.3f}",
            f"{c.spurious_pred_rate:.2f}",
            f"{c.val_pred_rate:.2f}",
            "" if c.planted is None else ("yes" if c.planted else "no"),
        )
    return table
