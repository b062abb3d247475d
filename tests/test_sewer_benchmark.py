"""Sewer-ML benchmark metrics at per-class thresholds and its score file, against the published definitions."""
import csv
import os

import numpy as np
import pytest
from sklearn.metrics import f1_score, fbeta_score

from sfr_jax.errors import InputError
from sfr_jax.eval import metrics
from sfr_jax.eval.sewer_scores import BENCHMARK_CODES, sigmoid_csv_name, write_sigmoid_csv
from sfr_jax.text.classes import sewerml

# Published with Sewer-ML (Haurum & Moeslund, CVPR 2021): the class-importance weights, in the order of the
# benchmark's scoring script.
PUBLISHED_CIW = {"RB": 1.0000, "OB": 0.5518, "PF": 0.2896, "DE": 0.1622, "FS": 0.6419, "IS": 0.1847,
                 "RO": 0.3559, "IN": 0.3131, "AF": 0.0811, "BE": 0.2275, "FO": 0.2477, "GR": 0.0901,
                 "PH": 0.4167, "PB": 0.4167, "OS": 0.9009, "OP": 0.3829, "OK": 0.4396}


def official_style(probs, targets, weights, thresholds):
    """The scoring script's counting, per class at its own threshold: Nc (TP), Np (predicted, set to 1
    when 0), Ng (ground truth), the implicit normal class last; nan F-scores count 0."""
    n, c = probs.shape
    nc, np_, ng = np.zeros(c + 1), np.zeros(c + 1), np.zeros(c + 1)
    for k in range(c):
        pred = probs[:, k] >= thresholds[k]
        ng[k], np_[k], nc[k] = np.sum(targets[:, k] == 1), np.sum(pred), np.sum((targets[:, k] == 1) & pred)
    pred_normal = np.array([not any(probs[i, k] >= thresholds[k] for k in range(c)) for i in range(n)])
    true_normal = (targets == 1).sum(axis=1) == 0
    ng[-1], np_[-1], nc[-1] = true_normal.sum(), pred_normal.sum(), (true_normal & pred_normal).sum()
    np_[np_ == 0] = 1
    with np.errstate(invalid="ignore", divide="ignore"):
        p, r = nc / np_, nc / ng
        f1 = np.nan_to_num(2 * p * r / (p + r))
        f2 = np.nan_to_num(5 * p * r / (4 * p + r))
    return np.sum(f2[:-1] * weights) / np.sum(weights), f1[-1], f2[:-1]


@pytest.mark.parametrize("seed", range(4))
def test_f2_ciw_and_f1_normal_at_per_class_thresholds(seed):
    rng = np.random.default_rng(seed)
    probs = rng.random((300, 17)) ** 3
    targets = (rng.random((300, 17)) < 0.06).astype(np.int64)
    targets[:, 3] = 0  # a class without positives: F2 0, still in the denominator
    thresholds = rng.uniform(0.1, 0.9, 17)
    thresholds[5] = 1.5  # a class that never fires: precision 0
    weights = np.array([PUBLISHED_CIW[code] for code in BENCHMARK_CODES])
    got = metrics.sewer_benchmark(probs, targets, weights, from_logits=False, threshold=thresholds)
    f2_ciw, f1_normal, f2 = official_style(probs, targets, weights, thresholds)
    assert got["F2_CIW"] == pytest.approx(f2_ciw, rel=1e-12)
    assert got["F1_normal"] == pytest.approx(f1_normal, rel=1e-12)
    fired = probs >= thresholds
    sk_f2 = fbeta_score(targets, fired, beta=2, average=None, zero_division=0)
    np.testing.assert_allclose(got["F2_class"], sk_f2, rtol=1e-12)
    np.testing.assert_allclose(got["F2_class"], f2, rtol=1e-12)
    assert got["F2_CIW"] == pytest.approx(np.sum(sk_f2 * weights) / weights.sum(), rel=1e-12)
    normal_f1 = f1_score(targets.sum(axis=1) == 0, ~fired.any(axis=1), zero_division=0)
    assert got["F1_normal"] == pytest.approx(normal_f1, rel=1e-12)
    # decisions taken elsewhere (e.g. by Decisions) score the same
    assert metrics.sewer_benchmark_fired(fired, targets, weights)["F2_CIW"] == got["F2_CIW"]
    # one threshold for all is the benchmark's 0.5 on sigmoid(logit)
    logits = np.log(probs / (1 - probs))
    at_half = metrics.sewer_benchmark(logits, targets, weights)
    assert at_half["F2_CIW"] == pytest.approx(official_style(probs, targets, weights, np.full(17, 0.5))[0])
    with pytest.raises(ValueError, match="threshold has shape"):
        metrics.sewer_benchmark(logits, targets, weights, threshold=np.ones(3))


def test_class_set_carries_the_published_weights_and_codes():
    class_set = sewerml()
    assert sorted(class_set.codes) == sorted(BENCHMARK_CODES) == sorted(PUBLISHED_CIW)
    assert BENCHMARK_CODES == tuple(PUBLISHED_CIW)
    for code, weight in zip(class_set.codes, class_set.ciw):
        assert weight == PUBLISHED_CIW[code]


def test_sigmoid_csv_has_the_benchmark_layout(tmp_path):
    class_set = sewerml()
    rng = np.random.default_rng(0)
    names = [f"{i:08d}.png" for i in rng.permutation(40) + 1]
    probs = rng.random((40, 17))
    probs[0, 0] = np.nextafter(0.5, 0)  # just below the benchmark's threshold: must stay below
    path = os.path.join(tmp_path, "scores", sigmoid_csv_name("val"))
    assert path.endswith("val_sigmoid.csv")
    assert write_sigmoid_csv(path, names, probs, class_set.codes) == path
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Filename", "RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF", "BE", "FO", "GR", "PH",
                       "PB", "OS", "OP", "OK"]
    assert [r[0] for r in rows[1:]] == sorted(names)
    by_name = {name: probs[i] for i, name in enumerate(names)}
    for row in rows[1:]:
        for code, value in zip(rows[0][1:], row[1:]):
            assert float(value) == by_name[row[0]][class_set.codes.index(code)]
    assert float(rows[1 + sorted(names).index(names[0])][1]) < 0.5
    assert os.listdir(tmp_path / "scores") == ["val_sigmoid.csv"]  # no temporary left beside it
    with pytest.raises(InputError, match="lack OS"):
        codes = class_set.codes[:-1]
        write_sigmoid_csv(path, names, probs[:, :-1], codes)
    with pytest.raises(InputError, match="more than once"):
        write_sigmoid_csv(path, names[:-1] + names[:1], probs, class_set.codes)
