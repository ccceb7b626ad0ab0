"""ImageNet-W's metrics, per class and over all images, from the two views of every image:

* ``inw_gap``: top-1 accuracy on watermarked val minus on clean val (the paper's IN-W gap; negative:
  the watermark hurts);
* ``carton_gap``: accuracy on the images of ground-truth class 478 (carton) under IN-W minus clean
  (the watermark resembles the text printed on cartons: positive means the shortcut helps there);
* ``carton_prob_change``: the mean change of P(carton) over all images (their ``delta_p_carton``);
* ``delta_p_carton_cond_carton``: the mean P(carton) over the images labelled carton under IN-W minus
  on clean (their name; None where no carton image was scored, as for ``carton_gap``).
"""

from __future__ import annotations

import numpy as np

from spurbench.benchmarks.base import ViewMetric, ViewScores, ViewTable

CARTON = 478  # ImageNet-1k "carton"

METRICS = (
    ViewMetric("clean_accuracy", "clean acc.", "top-1 accuracy on ImageNet val"),
    ViewMetric("watermark_accuracy", "IN-W acc.", "top-1 accuracy on the watermarked images"),
    ViewMetric("inw_gap", "IN-W gap", "IN-W accuracy minus clean accuracy; closer to 0 is better", "closer-to-zero", signed=True),
    ViewMetric(
        "carton_gap",
        "carton gap",
        "accuracy on the carton (478) images under IN-W minus clean: the shortcut helping",
        "closer-to-zero",
        signed=True,
    ),
    ViewMetric(
        "carton_prob_change", "ΔP(carton)", "mean change of P(carton) over all images when watermarked", "closer-to-zero", signed=True
    ),
    ViewMetric(
        "delta_p_carton_cond_carton",
        "ΔP(carton | carton)",
        "mean change of P(carton) over the carton (478) images when watermarked; – where none was scored",
        "closer-to-zero",
        signed=True,
    ),
)


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def inw_metrics(table: ViewTable) -> ViewScores:
    """Per class and overall: clean and IN-W accuracy, the IN-W gap, the carton gap and ΔP(carton)."""
    views = np.array(table.views)
    clean, marked = views == "clean", views == "watermark"
    carton = table.watched["carton"]
    per_class: dict[int, dict[str, float | None]] = {}
    for cls in table.classes:
        mine = table.class_index == cls.index
        c, w = table.correct[mine & clean], table.correct[mine & marked]
        per_class[cls.index] = {
            "clean_accuracy": _mean(c),
            "watermark_accuracy": _mean(w),
            "inw_gap": None if not c.size else float(w.mean() - c.mean()),
            "carton_prob_change": None if not c.size else float(carton[mine & marked].mean() - carton[mine & clean].mean()),
        }
    c, w = table.correct[clean], table.correct[marked]
    cartons = table.class_index == CARTON
    metrics = {
        "clean_accuracy": _mean(c),
        "watermark_accuracy": _mean(w),
        "inw_gap": float(w.mean() - c.mean()) if c.size else None,
        "carton_gap": float(table.correct[cartons & marked].mean() - table.correct[cartons & clean].mean())
        if (cartons & clean).any()
        else None,
        "carton_prob_change": float(carton[marked].mean() - carton[clean].mean()) if c.size else None,
        # their p_carton_cond_carton per loader (a mean over the carton images), IN-W minus IN-1k
        "delta_p_carton_cond_carton": float(carton[cartons & marked].mean() - carton[cartons & clean].mean())
        if (cartons & clean).any()
        else None,
    }
    return ViewScores(metrics=metrics, classes=per_class)
