"""What a views plugin (a ``ScoresViews`` plugin of the "views" task) scores with: the rows its metrics
are computed from, the metrics it returns, and the metrics it declares for boards and reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from spurbench.benchmarks.data import BenchmarkClass


@dataclass(frozen=True)
class ViewTable:
    """Every feature row of a views benchmark under one head, what its metrics are computed from (by
    ``evaluate`` and again by ``leaderboard verify``): per row the image's class, the view, whether
    the top-1 prediction over the full label space is the class, its softmax probability, and the
    probabilities of the plugin's watched classes."""

    image_ids: list[str]  # per row
    views: list[str]
    class_index: np.ndarray  # [rows] int
    correct: np.ndarray  # [rows] bool
    prob: np.ndarray  # [rows] float64
    watched: dict[str, np.ndarray]  # watched class name -> [rows] float64
    classes: list[BenchmarkClass]


@dataclass(frozen=True)
class ViewScores:
    """A views benchmark's metrics: aggregate and per class (None: undefined, e.g. a class without such images)."""

    metrics: dict[str, float | None]
    classes: dict[int, dict[str, float | None]]


@dataclass(frozen=True)
class ViewMetric:
    """One metric a views plugin declares: what it is and which direction is better, for boards and reports."""

    key: str
    header: str
    description: str
    better: Literal["higher", "lower", "closer-to-zero"] = "higher"
    signed: bool = False


__all__ = ["ViewMetric", "ViewScores", "ViewTable"]
