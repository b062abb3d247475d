"""The calibration record: its figures against scikit-learn, the hold-out ECE, JSON round trip, digests."""
import json
import math

import numpy as np
import pytest
from sklearn.metrics import fbeta_score, precision_score, recall_score

from sfr_jax.eval import calibration as cal
from sfr_jax.eval import calibration_record as rec
from sfr_jax.text.classes import sewerml
import calibration_fixtures


def synthetic(n=600, seed=3):
    return calibration_fixtures.synthetic(n, seed, separation=2)


def test_record_is_consistent_json_with_sklearn_figures(tmp_path):
    class_set, logits, labels, names = synthetic()
    # rows in reverse filename order: the hold-out must follow the names, not the rows
    record = rec.calibrate(logits[::-1], labels[::-1], class_set, step=7, split="val", filenames=names[::-1],
                           rule="zscore")
    path = rec.write_record(rec.record_path(str(tmp_path), 7), record)
    assert path == str(tmp_path / "calibration" / "7.json")
    assert rec.read_record(path) == json.loads(json.dumps(record))
    assert record["step"] == 7 and record["split"]["images"] == 600 and record["objective"] == "f2"
    assert record["unseen_rule"] == "zscore"
    for k, entry in enumerate(record["classes"]):
        assert entry["code"] == class_set.codes[k] and entry["seen"] == class_set.classes[k].seen
        assert entry["fitted"] == ("own labels" if entry["seen"] else "zscore")
        a, b = entry["platt"]["a"], entry["platt"]["b"]
        assert entry["threshold"] == pytest.approx(1 / (1 + math.exp(-(a * entry["logit_threshold"] + b))))
        pred = logits[:, k] >= entry["logit_threshold"]
        figs = entry["validation"]
        assert figs["support"] == labels[:, k].sum() and figs["fired"] == pred.sum()
        assert figs["precision"] == pytest.approx(precision_score(labels[:, k], pred, zero_division=0))
        assert figs["recall"] == pytest.approx(recall_score(labels[:, k], pred, zero_division=0))
        assert figs["f2"] == pytest.approx(fbeta_score(labels[:, k], pred, beta=2, zero_division=0))
        if entry["seen"]:
            assert entry["logit_threshold"] == cal.best_threshold(logits[:, k], labels[:, k], "f2")
    # ECE: sigmoid against the calibration fitted on the first half, on the second half of the names
    ece = record["ece"]
    assert ece["fit_images"] == 300 and ece["held_out_images"] == 300
    half = cal.fit(logits[:300], labels[:300], [c.seen for c in class_set.classes])
    after = 1 / (1 + np.exp(-(logits[300:] * half.scale + half.shift)))
    assert ece["all"]["after"] == pytest.approx(cal.expected_calibration_error(after, labels[300:]))
    before = 1 / (1 + np.exp(-logits[300:]))
    assert ece["all"]["before"] == pytest.approx(cal.expected_calibration_error(before, labels[300:]))
    assert ece["seen"]["after"] < ece["seen"]["before"]


def test_digests_identify_the_split_and_the_class_set():
    class_set, logits, labels, names = synthetic(n=50)
    digest = rec.split_digest(names, labels)
    order = np.random.default_rng(0).permutation(50)
    assert rec.split_digest([names[i] for i in order], labels[order]) == digest
    flipped = labels.copy()
    flipped[3, 2] = 1 - flipped[3, 2]
    assert rec.split_digest(names, flipped) != digest
    other = class_set.replace(description=[d + "." if i == 5 else d for i, d in enumerate(class_set.descriptions)])
    assert rec.class_set_digest(other) != rec.class_set_digest(class_set)
    assert rec.class_set_digest(sewerml()) == rec.class_set_digest(class_set)
