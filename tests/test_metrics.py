import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from spurbench.metrics import (
    ClassScores,
    aggregate_metrics,
    batched_roc_auc,
    bootstrap_mauc_ci,
    class_metrics,
    spurious_auc,
)


def test_spurious_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 5, 30) / 4.0  # many ties on purpose
    neg = rng.integers(0, 4, 40) / 4.0
    labels = np.r_[np.ones(30), np.zeros(40)]
    scores = np.r_[pos, neg]
    assert spurious_auc(pos, neg) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert spurious_auc(pos, neg, kind="ap") == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_auc_extremes_and_bad_kind():
    assert spurious_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert spurious_auc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert spurious_auc([0.5], [0.5]) == 0.5
    with pytest.raises(ValueError, match="kind must be 'roc' or 'ap', not 'pr'"):
        spurious_auc([0.5], [0.5], kind="pr")
    with pytest.raises(ValueError, match="at least one positive and one negative score"):
        spurious_auc([], [0.5])


def test_batched_auc_equals_rowwise_sklearn():
    rng = np.random.default_rng(2)
    pos = rng.integers(0, 10, size=(7, 15)).astype(float)
    neg = rng.integers(0, 10, size=(7, 9)).astype(float)
    got = batched_roc_auc(pos, neg)
    for i in range(7):
        assert got[i] == pytest.approx(spurious_auc(pos[i], neg[i]), abs=1e-12)


def _scores(seed: int, shift: float) -> ClassScores:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1, 50) ** (1 - shift)
    neg = rng.uniform(0, 1, 60)
    return ClassScores(seed, pos, neg, pos > 0.5, neg > 0.7)


def test_class_metrics_values():
    s = ClassScores(0, np.array([0.9, 0.6, 0.2]), np.array([0.8, 0.1]), np.array([True, True, False]), np.array([True, False]))
    m = class_metrics(s)
    assert m.auc == pytest.approx(4 / 6)
    assert m.spurious_pred_rate == 0.5
    assert m.val_pred_rate == pytest.approx(2 / 3)
    assert m.mean_prob_val == pytest.approx(1.7 / 3)
    assert m.mean_prob_spurious == pytest.approx(0.45)


def test_aggregates_and_bootstrap_ci():
    per_class = [_scores(k, 0.1 * k) for k in range(5)]
    agg = aggregate_metrics(per_class, draws=500, seed=0)
    aucs = [spurious_auc(s.pos_prob, s.neg_prob) for s in per_class]
    assert agg.mauc == pytest.approx(np.mean(aucs))
    pooled = spurious_auc(np.concatenate([s.pos_prob for s in per_class]), np.concatenate([s.neg_prob for s in per_class]))
    assert agg.pooled_auc == pytest.approx(pooled)
    assert agg.accuracy == pytest.approx(np.mean(np.concatenate([s.pos_pred_is_k for s in per_class])))
    assert agg.mauc_ci_low < agg.mauc < agg.mauc_ci_high
    assert agg.mauc_ci_high - agg.mauc_ci_low < 0.2
    # fixed seed -> identical CI; different seed -> different CI
    assert bootstrap_mauc_ci(per_class, 500, seed=0) == (agg.mauc_ci_low, agg.mauc_ci_high)
    assert bootstrap_mauc_ci(per_class, 500, seed=1) != (agg.mauc_ci_low, agg.mauc_ci_high)
    assert bootstrap_mauc_ci(per_class, 0) == (None, None)  # no CI asked for: nothing, not NaN (JSON has no NaN)


def test_bootstrap_matches_a_plain_loop():
    per_class = [_scores(k, 0.2) for k in range(3)]
    rng = np.random.default_rng(0)
    maucs = np.zeros(50)
    for s in per_class:
        pi = rng.integers(0, s.pos_prob.size, size=(50, s.pos_prob.size))
        ni = rng.integers(0, s.neg_prob.size, size=(50, s.neg_prob.size))
        maucs += np.array([spurious_auc(s.pos_prob[pi[d]], s.neg_prob[ni[d]]) for d in range(50)])
    maucs /= 3
    assert bootstrap_mauc_ci(per_class, 50, seed=0) == pytest.approx(tuple(np.quantile(maucs, [0.025, 0.975])))
