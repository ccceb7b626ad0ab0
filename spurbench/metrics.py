"""Class-wise spurious AUC and friends, from per-image scores.

Per class k the score of an image is the softmax probability of class k over the
model's full label space. Positives are images of class k, negatives the
spurious-only images of class k. ROC-AUC is the paper's spurious score; AP is what
the upstream code computed under the name "AUC", reported here as ``ap``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

AucKind = Literal["roc", "ap"]
MAX_BOOTSTRAP_DRAWS = 10_000  # run and verify both stop here: a result must not be able to ask for unbounded work
TOLERANCE = 1e-6  # a stored metric and its recomputation agree within this

# A probability, AUC, AP or rate: finite and in [0, 1]; a file with anything else is not a result.
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _metric(description: str, better: Literal["higher", "lower"]):
    """One declared metric: what it is and which direction is better (recorded in the JSON schema)."""
    return Field(description=description, json_schema_extra={"better": better})


class ClassMetrics(BaseModel):
    """The metrics of one class under one head, declared once: computed by ``evaluate``, recomputed by
    ``leaderboard verify``, shown by reports and boards."""

    model_config = ConfigDict(extra="forbid")

    auc: Unit = _metric("ROC-AUC separating the class's own images from its spurious-only images (1: no reliance)", "higher")
    ap: Unit = _metric("average precision of the same ranking (the authors' code calls it AUC)", "higher")
    spurious_pred_rate: Unit = _metric("fraction of the class's spurious-only images predicted as the class", "lower")
    val_pred_rate: Unit = _metric("fraction of the class's own images predicted as the class (recall)", "higher")
    mean_prob_val: Unit = _metric("mean probability of the class on its own images", "higher")
    mean_prob_spurious: Unit = _metric("mean probability of the class on its spurious-only images", "lower")


class HeadMetrics(BaseModel):
    """The aggregate metrics of one head over all classes, declared once (see :class:`ClassMetrics`)."""

    model_config = ConfigDict(extra="forbid")

    mauc: Unit = _metric("mean over classes of the ROC-AUC: the paper's definition of the spurious score", "higher")
    mauc_ci_low: Unit | None = _metric("2.5 % bootstrap percentile of the mAUC; None without bootstrap", "higher")
    mauc_ci_high: Unit | None = _metric("97.5 % bootstrap percentile of the mAUC; None without bootstrap", "higher")
    mean_ap: Unit = _metric("mean over classes of the average precision: what the authors' code prints as mean AUC (Table 2)", "higher")
    pooled_auc: Unit = _metric("ROC-AUC over all classes' images pooled", "higher")
    pooled_ap: Unit = _metric("AP over all classes' images pooled: the authors' joint score", "higher")
    accuracy: Unit = _metric("top-1 accuracy on the class images", "higher")
    spurious_pred_rate: Unit = _metric("fraction of spurious-only images predicted as their class", "lower")


def better(model: type[BaseModel], name: str) -> str:
    """ "higher" or "lower": the declared direction of a metric."""
    extra = model.model_fields[name].json_schema_extra
    direction = extra.get("better") if isinstance(extra, dict) else None
    if not isinstance(direction, str):
        raise KeyError(f"{model.__name__}.{name} declares no direction (_metric's better)")
    return direction


def differences(stored: BaseModel, recomputed: BaseModel, tolerance: float = TOLERANCE) -> list[tuple[str, float | None, float | None]]:
    """(metric, stored, recomputed) for every declared metric of ``recomputed`` that ``stored`` does not match."""
    out = []
    for name in type(recomputed).model_fields:
        a, b = getattr(stored, name), getattr(recomputed, name)
        same = (a is None and b is None) if a is None or b is None else (math.isnan(b) and math.isnan(a)) or abs(a - b) <= tolerance
        if not same:
            out.append((name, a, b))
    return out


def _labelled(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos_scores, dtype=np.float64).ravel()
    neg = np.asarray(neg_scores, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("spurious_auc needs at least one positive and one negative score")
    labels = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    return labels, np.concatenate([pos, neg])


def spurious_auc(pos_scores: Sequence[float] | np.ndarray, neg_scores: Sequence[float] | np.ndarray, kind: AucKind = "roc") -> float:
    """AUC separating class images (positives) from spurious-only images (negatives).

    ``kind="roc"``: ROC-AUC, the paper's definition (1.0 = no reliance on the spurious feature).
    ``kind="ap"``: average precision with the class images as the positive class (upstream's number).
    """
    # lazy: scikit-learn and SciPy cost about a second of every process's start; only scoring needs them
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, scores = _labelled(np.asarray(pos_scores), np.asarray(neg_scores))
    if kind == "roc":
        return float(roc_auc_score(labels, scores))
    if kind == "ap":
        return float(average_precision_score(labels, scores))
    raise ValueError(f"kind must be 'roc' or 'ap', not {kind!r}")


def batched_roc_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of pos [B, P] against the same row of neg [B, M] (Mann-Whitney U, ties = 1/2)."""
    # lazy: as in spurious_auc
    from scipy.stats import rankdata

    n_pos, n_neg = pos.shape[1], neg.shape[1]
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)  # average ranks handle ties like sklearn
    rank_sum = ranks[:, :n_pos].sum(axis=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@dataclass(frozen=True)
class ClassScores:
    """Per-image scores of one class: probability of k and whether k was the top-1 prediction."""

    class_index: int
    pos_prob: np.ndarray
    neg_prob: np.ndarray
    pos_pred_is_k: np.ndarray
    neg_pred_is_k: np.ndarray


def class_metrics(scores: ClassScores) -> ClassMetrics:
    """The per-class metrics of one head."""
    return ClassMetrics(
        auc=spurious_auc(scores.pos_prob, scores.neg_prob, "roc"),
        ap=spurious_auc(scores.pos_prob, scores.neg_prob, "ap"),
        spurious_pred_rate=float(np.mean(scores.neg_pred_is_k)),
        val_pred_rate=float(np.mean(scores.pos_pred_is_k)),
        mean_prob_val=float(np.mean(scores.pos_prob)),
        mean_prob_spurious=float(np.mean(scores.neg_prob)),
    )


def bootstrap_mauc_ci(
    per_class: Sequence[ClassScores], draws: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | tuple[None, None]:
    """Percentile CI of the mAUC, resampling images with replacement within each class and role;
    (None, None) for ``draws=0`` (no CI asked for).

    Vectorised over draws: one [draws, n] index matrix per class and role.
    """
    if draws <= 0:
        return (None, None)
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    for scores in per_class:
        pos_idx = rng.integers(0, scores.pos_prob.size, size=(draws, scores.pos_prob.size))
        neg_idx = rng.integers(0, scores.neg_prob.size, size=(draws, scores.neg_prob.size))
        total += batched_roc_auc(scores.pos_prob[pos_idx], scores.neg_prob[neg_idx])
    maucs = total / len(per_class)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(maucs, [tail, 1.0 - tail])
    return float(low), float(high)


def aggregate_metrics(per_class: Sequence[ClassScores], draws: int = 1000, seed: int = 0) -> HeadMetrics:
    """mAUC, mean AP, pooled AUC and AP, clean accuracy on the positives, and the bootstrap CI of the mAUC.

    ``mauc`` is the paper's definition (ROC-AUC); ``mean_ap`` and ``pooled_ap`` are the numbers the
    authors' code computes as "mean" and "joint" spurious score (``average_precision_score``).
    """
    rows = [class_metrics(s) for s in per_class]
    pos_all = np.concatenate([s.pos_prob for s in per_class])
    neg_all = np.concatenate([s.neg_prob for s in per_class])
    correct = np.concatenate([s.pos_pred_is_k for s in per_class])
    low, high = bootstrap_mauc_ci(per_class, draws=draws, seed=seed)
    return HeadMetrics(
        mauc=float(np.mean([r.auc for r in rows])),
        mauc_ci_low=low,
        mauc_ci_high=high,
        mean_ap=float(np.mean([r.ap for r in rows])),
        pooled_auc=spurious_auc(pos_all, neg_all, "roc"),
        pooled_ap=spurious_auc(pos_all, neg_all, "ap"),
        accuracy=float(np.mean(correct)),
        spurious_pred_rate=float(np.mean(np.concatenate([s.neg_pred_is_k for s in per_class]))),
    )
