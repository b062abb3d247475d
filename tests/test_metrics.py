"""Metrics vs scikit-learn, hand-computed values and loop re-implementations of the reference formulas."""
import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from sfr_jax.eval.metrics import (average_precision, evaluate, mean_average_precision, sewer_benchmark,
                                  topk_metrics, topk_predictions)


def sklearn_aps(scores, labels):
    return np.array([average_precision_score(labels[:, c], scores[:, c]) if labels[:, c].any() else np.nan
                     for c in range(scores.shape[1])])


@pytest.mark.parametrize("kind", ["continuous", "ties", "coarse_ties"])
def test_average_precision_equals_sklearn(kind):
    rng = np.random.default_rng({"continuous": 0, "ties": 1, "coarse_ties": 2}[kind])
    n, c = 300, 7
    if kind == "continuous":
        scores = rng.normal(size=(n, c)).astype(np.float32)
    else:
        scores = rng.integers(0, 4 if kind == "ties" else 2, size=(n, c)).astype(np.float32)
    labels = (rng.random((n, c)) < 0.2).astype(np.int64)
    labels[:, 3] = 0  # a class without positives
    labels[:, 5] = 0
    labels[17, 5] = 1  # a class with a single positive
    ap = average_precision(scores, labels)
    expected = sklearn_aps(scores, labels)
    assert np.isnan(ap[3]) and np.isnan(expected[3])
    np.testing.assert_allclose(ap, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean_average_precision(scores, labels), np.nanmean(expected), rtol=1e-12)


def test_average_precision_hand_cases():
    # all-equal scores: one threshold admits everything, AP = prevalence
    labels = np.array([[1], [0], [0], [1], [0]])
    np.testing.assert_allclose(average_precision(np.zeros((5, 1)), labels), [2 / 5])
    # ranking 1,0,1 : AP = (1/1 + 2/3) / 2
    np.testing.assert_allclose(average_precision(np.array([[3.0], [2.0], [1.0]]), np.array([[1], [0], [1]])),
                               [(1 + 2 / 3) / 2])
    # -1 labels count as negatives (the reference maps them to 0)
    np.testing.assert_allclose(average_precision(np.array([[3.0], [2.0]]), np.array([[-1], [1]])), [0.5])
    assert mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2))) == 0.0  # no class has a positive


def reference_topk(scores, labels, k):
    """The reference's multilabel_evaluation + cal_metrics re-written with loops (no ties in `scores`)."""
    n, c = scores.shape
    pred = np.zeros((n, c))
    for i in range(n):
        for j in np.argsort(-scores[i])[:k]:
            pred[i, j] = 1
    tp = ((pred + labels) == 2).sum(0)
    fp = ((pred - labels) == 1).sum(0)
    fn = ((pred - labels) == -1).sum(0)
    p_c = [tp[i] / (tp[i] + fp[i]) if tp[i] > 0 else 0.0 for i in range(c)]
    r_c = [tp[i] / (tp[i] + fn[i]) if tp[i] > 0 else 0.0 for i in range(c)]
    cp, cr = sum(p_c) / c, sum(r_c) / c
    op, or_ = tp.sum() / (tp + fp).sum(), tp.sum() / (tp + fn).sum()
    f = lambda p, r: 0.0 if p == 0 and r == 0 else 2 * p * r / (p + r)
    return {"OP": op, "OR": or_, "OF1": f(op, or_), "CP": cp, "CR": cr, "CF1": f(cp, cr)}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_equals_reference_formula(k):
    rng = np.random.default_rng(k)
    scores = rng.normal(size=(200, 6))
    labels = (rng.random((200, 6)) < 0.25).astype(np.int64)
    labels[:, 2] = 0  # a class without positives counts 0 in CP and CR
    got, want = topk_metrics(scores, labels, k), reference_topk(scores, labels, k)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, err_msg=key)


def test_topk_hand_case_ties_and_k_above_c():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.2], [0.3, 0.8, 0.1]])
    labels = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    # all-equal row: ties go to the lower class index
    np.testing.assert_array_equal(topk_predictions(scores, 1), [[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    m = topk_metrics(scores, labels, 1)  # TP: img0/c0, img2/c1 ; FP: img1/c0
    assert m["OP"] == pytest.approx(2 / 3) and m["OR"] == pytest.approx(2 / 4)
    assert m["OF1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    # per class: c0 P=1/2 R=1/1, c1 P=1/1 R=1/1, c2 TP=0 -> 0, 0
    assert m["CP"] == pytest.approx((0.5 + 1 + 0) / 3) and m["CR"] == pytest.approx(2 / 3)
    # k > C: every class predicted, OR = 1, OP = prevalence
    m = topk_metrics(scores, labels, 10)
    assert m["OR"] == 1.0 and m["OP"] == pytest.approx(4 / 9)
    assert m == topk_metrics(scores, labels, 3)
    with pytest.raises(ValueError, match="k >= 1"):
        topk_metrics(scores, labels, 0)
    table = evaluate(scores, labels, ks=(1, 3))
    assert table["OF1@1"] == pytest.approx(topk_metrics(scores, labels, 1)["OF1"]) and "mAP" in table


def sewer_loop(probs, labels, weights, threshold=0.5):
    """Haurum & Moeslund's Sewer-ML benchmark metrics, written with per-class loops."""
    n, c = probs.shape
    f2s = []
    for k in range(c):
        pred, true = probs[:, k] >= threshold, labels[:, k] == 1
        tp, n_p, n_g = np.sum(pred & true), max(np.sum(pred), 1), np.sum(true)
        p, r = tp / n_p, (tp / n_g if n_g else np.nan)
        f2 = 5 * p * r / (4 * p + r) if (4 * p + r) > 0 else np.nan
        f2s.append(0.0 if np.isnan(f2) else f2)
    pred_n, true_n = ~(probs >= threshold).any(1), ~(labels == 1).any(1)
    tp, n_p, n_g = np.sum(pred_n & true_n), max(np.sum(pred_n), 1), np.sum(true_n)
    p, r = tp / n_p, (tp / n_g if n_g else np.nan)
    f1 = 2 * p * r / (p + r) if (p + r) > 0 else np.nan
    return np.sum(np.array(f2s) * weights) / np.sum(weights), (0.0 if np.isnan(f1) else f1)


def test_sewer_benchmark_matches_loop_formula():
    rng = np.random.default_rng(3)
    logits = rng.normal(-1.0, 1.5, size=(400, 17))
    labels = (rng.random((400, 17)) < 0.08).astype(np.int64)
    labels[:, 4] = 0  # a class without positives has F2 = 0
    weights = rng.random(17) + 0.1
    got = sewer_benchmark(logits, labels, weights)
    f2_ciw, f1_normal = sewer_loop(1 / (1 + np.exp(-logits)), labels, weights)
    assert got["F2_CIW"] == pytest.approx(f2_ciw, rel=1e-12)
    assert got["F1_normal"] == pytest.approx(f1_normal, rel=1e-12)
    assert got["F2_class"][4] == 0.0
    probs = 1 / (1 + np.exp(-logits))
    assert sewer_benchmark(probs, labels, weights, from_logits=False)["F2_CIW"] == pytest.approx(f2_ciw)


def test_sewer_benchmark_hand_case():
    # logit 0 -> sigmoid 0.5 -> predicted positive (threshold is >=)
    logits = np.array([[0.0, -1.0], [-2.0, -3.0], [-1.0, 2.0], [-1.0, -1.0]])
    labels = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    out = sewer_benchmark(logits, labels, np.array([1.0, 3.0]))
    # class 0: TP 1, predicted 1, true 2 -> P 1, R 1/2 ; class 1: TP 1, predicted 1, true 2 -> same
    f2 = 5 * 1 * 0.5 / (4 * 1 + 0.5)
    assert out["F2_CIW"] == pytest.approx(f2)
    # normal: predicted rows 1, 3 ; true normal row 1 -> P 1/2, R 1 -> F1 2/3
    assert out["F1_normal"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one weight per class"):
        sewer_benchmark(logits, labels, np.ones(3))
