"""Core and spurious accuracy (Singla & Feizi, ICLR 2022, sec. 5.1) from the view rows of a result.

Every image of class i is seen clean and, for each noise level sigma, in these views (names parsed
back here, so ``leaderboard verify`` recomputes everything from the stored rows alone):

* ``noise-spurious@<sigma>``: Gaussian noise on the pixel-wise max of the image's *spurious* feature
  masks (paper eq. 2, mask s); only images in D_S(i), those with at least one spurious mask;
* ``noise-core@<sigma>``: the same on its *core* masks (mask c); images in D_C(i);
* ``noise-feature-<f>@<sigma>``: on the mask of feature f alone; images in D(i, f).

Per class: ``clean_accuracy`` (all its images), ``core_accuracy`` = accuracy on D_S(i) under noise on
s (acc^(C)(i)), ``spurious_accuracy`` = on D_C(i) under noise on c (acc^(S)(i)), each with its drop
against the clean accuracy of the *same* images (D_S(i) and D_C(i) differ in general, as the paper
notes) and the same drop of the class's mean probability (``*_prob_drop``: it moves where the top-1
does not, e.g. when one region alone already decides the class), ``gap`` = core − spurious accuracy, and ``feature_<f>_drop`` per feature. Aggregates are means
over the classes where a value is defined (the paper's acc^(C) = mean over classes), the aggregate
gap is core minus spurious accuracy of those means (so it is the difference of the two columns beside
it, also where some classes lack one kind of mask), plus the mean drops per class group. The first noise level is the reported one (unsuffixed keys); every further
level gets ``@<sigma>`` keys.
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from spurbench.benchmarks.base import ViewMetric, ViewScores, ViewTable

VIEW = re.compile(r"^noise-(spurious|core|feature-(\d+))@([0-9.]+)$")
CLEAN = "clean"
DEFAULT_SIGMA = 0.25  # the paper's figures (Fig. 5, sec. 5.2)

METRICS: tuple[ViewMetric, ...] = (
    ViewMetric("clean_accuracy", "clean acc.", "top-1 accuracy on the class's Salient images, no noise"),
    ViewMetric(
        "core_accuracy",
        "core acc.",
        "accuracy with noise on the spurious masks (acc^(C), the paper's core accuracy); high: the model does not need the spurious regions",
    ),
    ViewMetric(
        "spurious_accuracy", "spurious acc.", "accuracy with noise on the core masks (acc^(S)); low: the model needs the core regions"
    ),
    ViewMetric("gap", "core − spurious", "core accuracy minus spurious accuracy; higher is better", signed=True),
    ViewMetric("core_drop", "core drop", "core accuracy minus the clean accuracy of the same images", signed=True),
    ViewMetric("spurious_drop", "spurious drop", "spurious accuracy minus the clean accuracy of the same images", "lower", signed=True),
    ViewMetric(
        "core_prob_drop",
        "core Δp",
        "mean probability of the class with noise on the spurious masks minus without (same images)",
        signed=True,
    ),
    ViewMetric(
        "spurious_prob_drop",
        "spurious Δp",
        "mean probability of the class with noise on the core masks minus without (same images)",
        "lower",
        signed=True,
    ),
)


def view_name(kind: str, sigma: float) -> str:
    """``noise-spurious@0.25``, ``noise-core@0.25`` or ``noise-feature-<f>@0.25`` (kind ``feature-<f>``)."""
    return f"noise-{kind}@{sigma:g}"


def _average(values: list[float]) -> float:
    """The mean of a non-empty list."""
    return float(np.mean(values))


def _mean(values: list[float]) -> float | None:
    return _average(values) if values else None


def salient_metrics(table: ViewTable) -> ViewScores:
    """Per-class and aggregate core/spurious accuracy from a head's view rows."""
    clean: dict[str, bool] = {}
    clean_prob: dict[str, float] = {}
    noisy: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)  # (kind, sigma) -> image -> correct
    noisy_prob: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    sigmas: list[str] = []
    class_of: dict[str, int] = {}
    for image_id, view, k, correct, prob in zip(
        table.image_ids, table.views, table.class_index.tolist(), table.correct.tolist(), table.prob.tolist()
    ):
        class_of[image_id] = k
        if view == CLEAN:
            clean[image_id], clean_prob[image_id] = bool(correct), prob
            continue
        match = VIEW.match(view)
        if match is None:
            raise ValueError(f"unknown view {view!r}")
        kind, sigma = match.group(1), match.group(3)
        if sigma not in sigmas:
            sigmas.append(sigma)
        noisy[(kind, sigma)][image_id] = bool(correct)
        noisy_prob[(kind, sigma)][image_id] = prob
    per_class: dict[int, dict[str, float | None]] = {}
    for cls in table.classes:
        images = [i for i, k in class_of.items() if k == cls.index]
        row: dict[str, float | None] = {"clean_accuracy": _mean([clean[i] for i in images if i in clean])}
        for n, sigma in enumerate(sigmas):
            suffix = "" if n == 0 else f"@{sigma}"
            for kind, name in (("spurious", "core"), ("core", "spurious")):  # noise on spurious masks -> core accuracy
                hit = {i: c for i, c in noisy[(kind, sigma)].items() if class_of[i] == cls.index}
                accuracy = _mean(list(hit.values()))
                row[f"{name}_accuracy{suffix}"] = accuracy
                row[f"{name}_drop{suffix}"] = None if accuracy is None else accuracy - _average([clean[i] for i in hit])
                probs = {i: p for i, p in noisy_prob[(kind, sigma)].items() if class_of[i] == cls.index}
                row[f"{name}_prob_drop{suffix}"] = (
                    None if not probs else _average(list(probs.values())) - _average([clean_prob[i] for i in probs])
                )
            core, spurious = row[f"core_accuracy{suffix}"], row[f"spurious_accuracy{suffix}"]
            row[f"gap{suffix}"] = None if core is None or spurious is None else core - spurious
            features = sorted({int(kind.split("-")[1]) for kind, s in noisy if s == sigma and kind.startswith("feature-")})
            for f in features:
                hit = {i: c for i, c in noisy[(f"feature-{f}", sigma)].items() if class_of[i] == cls.index}
                if hit:
                    row[f"feature_{f}_drop{suffix}"] = _average(list(hit.values())) - _average([clean[i] for i in hit])
        per_class[cls.index] = row
    keys = ["clean_accuracy"] + [
        f"{m}{'' if n == 0 else '@' + s}"
        for n, s in enumerate(sigmas)
        for m in ("core_accuracy", "spurious_accuracy", "gap", "core_drop", "spurious_drop", "core_prob_drop", "spurious_prob_drop")
    ]
    metrics: dict[str, float | None] = {key: _mean([v for r in per_class.values() if (v := r.get(key)) is not None]) for key in keys}
    for n, sigma in enumerate(sigmas):  # the aggregate gap is the difference of the two aggregates shown beside it
        suffix = "" if n == 0 else f"@{sigma}"
        core, spurious = metrics[f"core_accuracy{suffix}"], metrics[f"spurious_accuracy{suffix}"]
        metrics[f"gap{suffix}"] = None if core is None or spurious is None else core - spurious
    groups = sorted({c.group for c in table.classes if c.group is not None})
    for group in groups:
        members = [per_class[c.index] for c in table.classes if c.group == group]
        for key in ("clean_accuracy", "core_drop", "spurious_drop", "core_prob_drop", "spurious_prob_drop"):
            metrics[f"{key}_{group}"] = _mean([v for r in members if (v := r.get(key)) is not None])
    return ViewScores(metrics=metrics, classes=per_class)


__all__ = ["CLEAN", "DEFAULT_SIGMA", "METRICS", "salient_metrics", "view_name"]
