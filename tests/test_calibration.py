"""Calibration fits against brute force, scikit-learn, hand-computed cases and planted ground truths."""
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import fbeta_score

from sfr_jax.errors import InputError
from sfr_jax.eval import calibration as cal


def brute_force(scores, labels, objective):
    """Try every distinct score as the threshold (fires at score >= t); the best, ties to the highest."""
    best_value, best_t = -1.0, None
    for t in np.unique(scores):
        pred = scores >= t
        tp, n_pos = np.sum(pred & labels), np.sum(labels)
        if objective.startswith("recall="):
            value = 1.0 if tp / n_pos >= float(objective[7:]) else 0.0
        else:
            beta = 2.0 if objective == "f2" else 1.0
            p = tp / pred.sum()
            r = tp / n_pos
            value = 0.0 if p + r == 0 else (1 + beta ** 2) * p * r / (beta ** 2 * p + r)
        if value >= best_value:  # ascending thresholds: an equal value later is a higher threshold
            best_value, best_t = value, t
    return best_t


@pytest.mark.parametrize("objective", ["f2", "f1", "recall=0.9", "recall=0.5", "recall=1"])
@pytest.mark.parametrize("seed", range(6))
def test_threshold_fires_what_brute_force_fires(objective, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels = rng.random(n) < rng.uniform(0.05, 0.5)
    labels[0] = True
    scores = rng.normal(size=n) + 1.5 * labels
    if seed % 2:
        scores = np.round(scores, 1)  # many ties
    t = cal.best_threshold(scores, labels, objective)
    want = brute_force(scores, labels, objective)
    np.testing.assert_array_equal(scores >= t, scores >= want)
    below = scores[scores < want]
    # halfway to the next lower score (never at or below it); the lowest score when everything fires
    assert t <= want and (below.size == 0 or t > below.max())
    if below.size:
        assert t == pytest.approx((want + below.max()) / 2)


def test_ties_go_to_the_higher_threshold():
    # F1 at t=4: 2*1/(2+1); at t=1: 2*2/(2+4): equal, so the higher (fire only the 4) wins, placed at 3.5
    scores, labels = np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 0, 1])
    assert cal.best_threshold(scores, labels, "f1") == 3.5
    # F2 prefers the recall: fire all, threshold at the lowest score
    assert cal.best_threshold(scores, labels, "f2") == 1.0


def test_recall_target_takes_the_highest_threshold_that_reaches_it():
    scores, labels = np.array([5.0, 4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 1, 0, 1])
    assert cal.best_threshold(scores, labels, "recall=0.3") == 4.5  # one positive of three is enough
    assert cal.best_threshold(scores, labels, "recall=0.6") == 2.5  # two of three: fire 5, 4, 3
    assert cal.best_threshold(scores, labels, f"recall={2 / 3}") == 2.5  # reached exactly, not missed by rounding
    assert cal.best_threshold(scores, labels, "recall=1") == 1.0
    assert math.isnan(cal.best_threshold(scores, np.zeros(5), "f2"))  # no positive: no threshold


@pytest.mark.parametrize("text", ["f3", "F2x", "recall", "recall=0", "recall=1.5", "recall=-1", "recall=x", ""])
def test_bad_objectives_are_input_errors(text):
    with pytest.raises(InputError, match="objective"):
        cal.parse_objective(text)


def test_objective_names():
    assert cal.parse_objective(" F2 ").name == "f2"
    assert cal.parse_objective("recall=0.90").name == "recall=0.9"
    assert cal.parse_objective("recall=1").target == 1.0


def sklearn_platt(x, y, weights=None):
    model = LogisticRegression(C=1e12, tol=1e-12, max_iter=100000)
    model.fit(x.reshape(-1, 1), y, sample_weight=weights)
    return model.coef_[0, 0], model.intercept_[0]


def test_platt_is_the_maximum_likelihood_logistic_fit():
    rng = np.random.default_rng(0)
    x = 3.0 * rng.normal(size=3000) + 5.0  # far from 0 and wide: the fit must standardise internally
    y = rng.random(3000) < 1 / (1 + np.exp(-(0.6 * x - 3.5)))
    a, b = cal.platt_fit(x, y, smoothing=False)
    want_a, want_b = sklearn_platt(x, y)
    assert a == pytest.approx(want_a, rel=1e-5) and b == pytest.approx(want_b, rel=1e-5)
    # Platt's smoothed targets are soft labels: the same as each pair counted as a positive with weight t
    # and as a negative with weight 1 - t.
    n_pos, n_neg = y.sum(), (~y).sum()
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = cal.platt_fit(x, y)
    want_a, want_b = sklearn_platt(np.r_[x, x], np.r_[np.ones(3000), np.zeros(3000)], np.r_[t, 1 - t])
    assert a == pytest.approx(want_a, rel=1e-5) and b == pytest.approx(want_b, rel=1e-5)


def test_platt_stays_finite_on_separable_data_and_rising():
    x = np.r_[np.linspace(-3, -1, 20), np.linspace(1, 3, 5)]
    y = np.r_[np.zeros(20), np.ones(5)]
    a, b = cal.platt_fit(x, y)
    assert np.isfinite([a, b]).all() and a > 0
    t = np.where(y == 1, 6 / 7, 1 / 22)
    want_a, want_b = sklearn_platt(np.r_[x, x], np.r_[np.ones(25), np.zeros(25)], np.r_[t, 1 - t])
    assert a == pytest.approx(want_a, rel=1e-4) and b == pytest.approx(want_b, rel=1e-4)
    # anti-informative scores: the slope stops at its floor and b is the best intercept for it
    a, b = cal.platt_fit(x, 1 - y)
    assert a == pytest.approx(cal.MIN_SLOPE / x.std())
    p = 1 / (1 + np.exp(-(a * x + b)))
    target = np.where(1 - y == 1, 21 / 22, 1 / 7)
    assert abs(np.sum(p - target)) < 1e-8


def test_ece_hand_computed():
    probs = np.array([[0.05, 0.1], [0.95, 1.0], [0.5, 0.52]])
    labels = np.array([[0, 1], [1, 1], [0, 1]])
    # bins of width 1/15: 0.05 -> 0, 0.1 -> 1, 0.95 and 1.0 -> 14, 0.5 and 0.52 -> 7
    # |0 - 0.05| + |1 - 0.1| + |2 - 1.95| + |1 - 1.02| = 1.02 over 6 pairs
    assert cal.expected_calibration_error(probs, labels) == pytest.approx(1.02 / 6)
    # a probability on a bin edge belongs to the bin above: 0.2 = 3/15 shares bin 3 with 0.25
    assert cal.expected_calibration_error([0.2, 0.25], [1, 0]) == pytest.approx(abs(1 - 0.45) / 2)
    assert cal.expected_calibration_error([0.0, 0.0, 1.0], [0, 0, 1]) == 0.0
    assert cal.expected_calibration_error(np.full(4, 0.5), [1, 0, 1, 0]) == 0.0


def planted(rng, n=400):
    """Every class is an affine image of one base score with the same labels: z-scores are identical."""
    labels = rng.random(n) < 0.2
    labels[:2] = True
    base = rng.normal(size=n) + 1.2 * labels
    offsets, spreads = np.array([-4.0, 0.0, 3.0, 7.0, -9.0]), np.array([0.5, 1.0, 2.0, 0.7, 3.0])
    return base[:, None] * spreads + offsets, np.repeat(labels[:, None], 5, axis=1)


def test_zscore_rule_recovers_the_oracle_on_a_planted_case():
    logits, labels = planted(np.random.default_rng(1))
    seen = np.array([True, True, True, True, False])
    fit = cal.fit(logits, labels, seen, "f2", rule="zscore")
    oracle = cal.best_threshold(logits[:, 4], labels[:, 4], "f2")
    np.testing.assert_array_equal(logits[:, 4] >= fit.logit_threshold[4], logits[:, 4] >= oracle)
    assert not fit.own[4] and fit.own[:4].all()
    # the global rule cannot transfer across offsets: on this class it fires (nearly) nothing
    f2 = lambda t: fbeta_score(labels[:, 4], logits[:, 4] >= t, beta=2, zero_division=0)
    assert f2(fit.rule_thresholds("global")[4]) < 0.5 * f2(oracle)
    assert fit.with_rule("global").logit_threshold[4] == fit.global_threshold


def test_fit_uses_no_unseen_labels_and_handles_seen_classes_without_positives():
    rng = np.random.default_rng(2)
    logits, labels = planted(rng)
    seen = np.array([True, True, True, False, True])
    labels = labels.copy()
    labels[:, 4] = 0  # a seen class without positives in this split
    first = cal.fit(logits, labels, seen, rule="zscore")
    shuffled = labels.copy()
    shuffled[:, 3] = rng.permutation(shuffled[:, 3])  # unseen labels changed: nothing may move
    second = cal.fit(logits, shuffled, seen, rule="zscore")
    np.testing.assert_array_equal(first.logit_threshold, second.logit_threshold)
    np.testing.assert_array_equal(first.scale, second.scale)
    assert not first.own[4] and first.logit_threshold[4] == first.rule_thresholds("zscore")[4]
    with pytest.raises(InputError, match="labelled"):
        cal.fit(logits, np.zeros_like(labels), seen)
    with pytest.raises(InputError, match="not finite"):
        cal.fit(np.where(labels, np.nan, logits), labels, seen)
    with pytest.raises(InputError, match="rule"):
        cal.fit(logits, labels, seen, rule="median")
