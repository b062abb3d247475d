"""Decisions: the uncalibrated default, decisions from a calibration record, refusals, a user's classes."""
import dataclasses
import json

import numpy as np
import pytest

from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval import calibration_record as rec
from sfr_jax.eval.decisions import UNCALIBRATED, Decisions
from sfr_jax.text.classes import ClassSet, DefectClass, sewerml


def logistic(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def calibrated():
    """(class set, logits, labels, record of step 7) on synthetic scores with per-class offsets."""
    class_set = sewerml()
    rng = np.random.default_rng(5)
    labels = rng.random((800, 17)) < np.r_[rng.uniform(0.05, 0.3, 12), rng.uniform(0.03, 0.1, 5)]
    logits = rng.normal(-2, 1.5, 17) + rng.uniform(0.5, 2, 17) * (rng.normal(size=(800, 17)) + 2 * labels)
    names = [f"{i:08d}.png" for i in range(800)]
    record = rec.calibrate(logits, labels, class_set, step=7, split="val", filenames=names, rule="zscore")
    return class_set, logits, labels, record


def test_uncalibrated_default_is_sigmoid_at_one_half():
    logits = np.array([[-3.0, 0.2, 5.0], [-0.1, -2.0, -40.0]])
    decisions = Decisions.uncalibrated(("A", "B", "C"))
    out = decisions.apply(logits)
    np.testing.assert_allclose(out["prob"], logistic(logits), rtol=1e-12)
    np.testing.assert_array_equal(out["fired"], logits >= 0)
    np.testing.assert_array_equal(out["normal"], [False, True])
    assert decisions.labels(logits) == [["B", "C"], []]
    assert decisions.source == UNCALIBRATED and not decisions.calibrated
    with pytest.raises(ValueError, match="3 classes"):
        decisions.apply(np.zeros((2, 4)))


def test_calibrated_decisions_follow_the_record(calibrated):
    class_set, logits, _, record = calibrated
    decisions = Decisions.from_calibration(record, step=7, class_set=class_set)
    assert decisions.codes == class_set.codes and decisions.calibrated
    assert "step 7" in decisions.source and "zscore rule" in decisions.source
    a = np.array([c["platt"]["a"] for c in record["classes"]])
    b = np.array([c["platt"]["b"] for c in record["classes"]])
    out = decisions.apply(logits)
    np.testing.assert_allclose(out["prob"], logistic(logits * a + b), rtol=1e-10)
    # thresholds in probability space fire exactly where the fitted logit thresholds do
    logit_threshold = np.array([c["logit_threshold"] for c in record["classes"]])
    np.testing.assert_array_equal(out["fired"], logits >= logit_threshold)
    np.testing.assert_array_equal(out["normal"], ~(logits >= logit_threshold).any(axis=1))


def test_a_record_for_another_step_or_class_set_is_refused(calibrated, tmp_path):
    class_set, _, _, record = calibrated
    path = rec.write_record(rec.record_path(str(tmp_path), 7), record)
    assert Decisions.from_calibration(path, step=7, class_set=class_set).source.startswith(f"calibrated: {path}")
    with pytest.raises(InputError, match=r"made for step 7 .* model is step 8") as error:
        Decisions.from_calibration(path, step=8, class_set=class_set)
    assert path in str(error.value)
    other = class_set.replace(description=[d + " Seen from above." for d in class_set.descriptions])
    with pytest.raises(InputError) as error:
        Decisions.from_calibration(path, step=7, class_set=other)
    message = str(error.value)
    assert rec.class_set_digest(class_set)[:19] in message and rec.class_set_digest(other)[:19] in message
    with pytest.raises(MissingInput, match="no calibration file"):
        Decisions.from_calibration(str(tmp_path / "nope.json"), step=7, class_set=class_set)
    broken = tmp_path / "broken.json"
    broken.write_text("{\"format\": ")
    with pytest.raises(InputError, match="not a readable calibration file"):
        Decisions.from_calibration(str(broken), step=7, class_set=class_set)
    broken.write_text(json.dumps(dict(record, format="something-else/9")))
    with pytest.raises(InputError, match="format"):
        Decisions.from_calibration(str(broken), step=7, class_set=class_set)
    broken.write_text(json.dumps(dict(record, classes=[dict(record["classes"][0], platt={"a": "x"})])))
    with pytest.raises(InputError, match=r"broken.json: classes\[0\]\.platt\.a is \"x\", not a finite number"):
        Decisions.from_calibration(str(broken), step=7, class_set=class_set)
    # without a file for the step: the uncalibrated default; with one: the calibration
    assert Decisions.for_step(str(tmp_path), 3, class_set).source == UNCALIBRATED
    assert Decisions.for_step(str(tmp_path), 7, class_set).calibrated


def user_classes(class_set):
    """A user's --classes: RB as calibrated, OB reused with another description, a new class XX."""
    rb, ob = class_set.classes[0], class_set.classes[1]
    new = DefectClass("XX", "Graffiti", "A sewer CCTV image of paint sprayed on the pipe wall.", seen=False)
    return ClassSet("mine", [rb, dataclasses.replace(ob, description="Rust flakes on the wall."), new])


def test_user_classes_follow_the_global_rule_without_statistics(calibrated):
    class_set, logits, _, record = calibrated
    mine = user_classes(class_set)
    decisions = Decisions.from_calibration(record, step=7, class_set=class_set, scored=mine)
    assert decisions.codes == ("RB", "OB", "XX")
    assert "OB XX not in the calibration: global rule" in decisions.source
    rb = record["classes"][0]
    assert decisions.scale[0] == rb["platt"]["a"] and decisions.threshold[0] == rb["threshold"]
    rule = record["rules"]["global"]
    x = logits[:, :3]  # any logits will do for the absent classes' rule
    out = decisions.apply(x)
    np.testing.assert_allclose(out["prob"][:, 1:], logistic(x[:, 1:] * rule["platt"]["a"] + rule["platt"]["b"]))
    np.testing.assert_array_equal(out["fired"][:, 1:], x[:, 1:] >= rule["logit_threshold"])
    # too few unlabelled images for z-statistics: still the global rule
    few = Decisions.from_calibration(record, step=7, class_set=class_set, scored=mine, unlabelled_logits=x[:10])
    np.testing.assert_array_equal(few.threshold, decisions.threshold)
    # codes alone match by code: OB keeps its calibration then
    by_code = Decisions.from_calibration(record, step=7, class_set=class_set, scored=("RB", "OB", "XX"))
    assert by_code.threshold[1] == record["classes"][1]["threshold"] and "XX not in" in by_code.source


def test_user_classes_take_z_statistics_from_unlabelled_images(calibrated):
    class_set, logits, _, record = calibrated
    mine = user_classes(class_set)
    rng = np.random.default_rng(0)
    unlabelled = rng.normal(size=(120, 3)) * [1.0, 2.0, 0.5] + [0.0, -3.0, 4.0]
    decisions = Decisions.from_calibration(record, step=7, class_set=class_set, scored=mine,
                                           unlabelled_logits=unlabelled)
    assert "zscore rule, z-statistics over 120 unlabelled images" in decisions.source
    mean, std = unlabelled.mean(axis=0), unlabelled.std(axis=0)
    z_rule = record["rules"]["zscore"]
    x = rng.normal(size=(500, 3)) * 3 * std + mean
    out = decisions.apply(x)
    z = (x[:, 1:] - mean[1:]) / std[1:]
    np.testing.assert_allclose(out["prob"][:, 1:], logistic(z_rule["platt"]["a"] * z + z_rule["platt"]["b"]))
    np.testing.assert_array_equal(out["fired"][:, 1:], z >= z_rule["z_threshold"])
    # a record whose unseen rule is global keeps the global threshold, with the z-map's probabilities
    global_record = dict(record, unseen_rule="global")
    g = Decisions.from_calibration(global_record, step=7, class_set=class_set, scored=mine,
                                   unlabelled_logits=unlabelled)
    global_threshold = record["rules"]["global"]["logit_threshold"]
    np.testing.assert_array_equal(g.apply(x)["fired"][:, 1:], x[:, 1:] >= global_threshold)
