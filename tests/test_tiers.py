"""Confidence tiers (issue 21): the precision-oriented threshold against scikit-learn's
precision_recall_curve on planted scores, its place in the calibration record, the tiers Decisions give,
and a record older than the tiers (one tier, said)."""
import json
import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve, precision_score

from sfr_jax.errors import InputError
from sfr_jax.eval import calibration as cal
from sfr_jax.eval import calibration_record as rec
from sfr_jax.eval.decisions import ONE_TIER, Decisions
import calibration_fixtures


def planted(n=500, seed=0, prevalence=0.2, ties=False):
    """Scores that rise with a planted label, with noise (rounded to make ties when asked)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prevalence).astype(int)
    scores = rng.normal(size=n) + 1.5 * labels
    return (np.round(scores, 1) if ties else scores), labels


def sklearn_lowest(scores, labels, precision):
    """The lowest threshold of precision_recall_curve whose precision reaches `precision` (None: none)."""
    prec, _, thresholds = precision_recall_curve(labels, scores)
    reach = np.flatnonzero(prec[:-1] >= precision)
    return None if reach.size == 0 else thresholds[reach[0]]


@pytest.mark.parametrize("seed,ties,target", [(0, False, 0.9), (1, True, 0.9), (2, False, 0.75),
                                              (3, True, 0.6), (4, False, 1.0)])
def test_precision_threshold_fires_what_sklearn_lowest_threshold_fires(seed, ties, target):
    scores, labels = planted(seed=seed, ties=ties)
    ours = cal.precision_threshold(scores, labels, target)
    theirs = sklearn_lowest(scores, labels, target)
    assert theirs is not None
    np.testing.assert_array_equal(scores >= ours, scores >= theirs)
    assert precision_score(labels, scores >= ours) >= target


def test_no_threshold_reaching_the_precision_is_nan():
    scores, labels = planted(seed=5, prevalence=0.05)
    scores = scores.copy()
    scores[labels == 0] += 10  # every negative above every positive: precision never reaches 0.9
    assert sklearn_lowest(scores, labels, 0.9) is None
    assert math.isnan(cal.precision_threshold(scores, labels, 0.9))
    assert math.isnan(cal.precision_threshold(scores, np.zeros_like(labels), 0.9))
    with pytest.raises(InputError, match="confident precision"):
        cal.check_precision(1.5)


def synthetic(n=800, seed=3):
    return calibration_fixtures.synthetic(n, seed, separation=3)


@pytest.mark.parametrize("rule", ["global", "zscore"])
def test_record_holds_both_thresholds_with_the_unseen_rules(rule):
    class_set, logits, labels, names = synthetic()
    seen = np.array([c.seen for c in class_set.classes])
    record = rec.calibrate(logits, labels, class_set, step=3, split="val", filenames=names, rule=rule,
                           confident_precision=0.8)
    record = json.loads(json.dumps(record, allow_nan=False))  # JSON as written (no nan)
    assert rec.validate_record(record) and record["confident_precision"] == 0.8
    mean, std = cal.standardise_stats(logits)
    pooled = sklearn_lowest(logits[:, seen].ravel(), labels[:, seen].ravel(), 0.8)
    pooled_z = sklearn_lowest(((logits - mean) / std)[:, seen].ravel(), labels[:, seen].ravel(), 0.8)
    for k, entry in enumerate(record["classes"]):
        if entry["seen"]:
            theirs = sklearn_lowest(logits[:, k], labels[:, k], 0.8)
        else:  # unseen: the rule's pooled threshold over the seen classes, on this class's scale
            theirs = pooled if rule == "global" else mean[k] + pooled_z * std[k]
        # Never below the recall-oriented threshold: a confident decision fires.
        theirs = max(theirs, entry["logit_threshold"])
        at = entry["confident_logit_threshold"]
        np.testing.assert_array_equal(logits[:, k] >= at, logits[:, k] >= theirs)
        assert entry["confident_threshold"] >= entry["threshold"]
        a, b = entry["platt"]["a"], entry["platt"]["b"]
        assert entry["confident_threshold"] == pytest.approx(1 / (1 + math.exp(-(a * at + b))))
        fired = logits[:, k] >= at
        assert entry["confident_validation"]["fired"] == fired.sum()
        assert entry["confident_validation"]["precision"] == pytest.approx(
            precision_score(labels[:, k], fired, zero_division=0))
        if entry["seen"]:
            assert entry["confident_validation"]["precision"] >= 0.8


def test_decisions_say_each_tier(tmp_path):
    class_set, logits, labels, names = synthetic()
    record = rec.calibrate(logits, labels, class_set, step=3, split="val", filenames=names)
    path = rec.write_record(rec.record_path(str(tmp_path), 3), record)
    decisions = Decisions.for_step(str(tmp_path), 3, class_set)
    assert decisions.tiered and "'confident' at precision >= 0.9" in decisions.source
    out = decisions.apply(logits)
    thresholds = np.array([c["threshold"] for c in record["classes"]])
    confident = np.array([np.inf if c["confident_threshold"] is None else c["confident_threshold"]
                          for c in record["classes"]])
    expected = np.where(out["prob"] >= confident, "confident", np.where(out["prob"] >= thresholds, "review", ""))
    np.testing.assert_array_equal(out["tier"].astype(str), expected)
    assert {"confident", "review", ""} <= set(out["tier"].ravel())
    # A class none of whose thresholds reaches the precision is never confident.
    record["classes"][0]["confident_threshold"] = None
    rec.write_record(path, record)
    tiers = Decisions.for_step(str(tmp_path), 3, class_set).apply(logits)["tier"]
    assert "confident" not in set(tiers[:, 0]) and "review" in set(tiers[:, 0])


def test_a_record_older_than_the_tiers_loads_as_one_tier(tmp_path):
    class_set, logits, labels, names = synthetic()
    record = rec.calibrate(logits, labels, class_set, step=3, split="val", filenames=names)
    del record["confident_precision"]
    for entry in record["classes"]:
        for key in ("confident_threshold", "confident_logit_threshold", "confident_validation"):
            del entry[key]
    rec.write_record(rec.record_path(str(tmp_path), 3), record)
    decisions = Decisions.for_step(str(tmp_path), 3, class_set)
    assert not decisions.tiered and ONE_TIER in decisions.source
    out = decisions.apply(logits)
    np.testing.assert_array_equal(out["tier"] == "review", out["fired"])
    # Without a calibration: one tier as well, and the note says so.
    plain = Decisions.uncalibrated(class_set.codes)
    assert not plain.tiered and plain.tier_note == ONE_TIER
    np.testing.assert_array_equal(plain.apply(logits)["tier"] == "review", logits >= 0)


def test_a_malformed_confident_threshold_is_refused():
    class_set, logits, labels, names = synthetic(n=200)
    record = rec.calibrate(logits, labels, class_set, step=3, split="val", filenames=names)
    record["classes"][2]["confident_threshold"] = "high"
    with pytest.raises(InputError, match=r"calibration record: classes\[2\]\.confident_threshold is not a finite number or null"):
        rec.validate_record(record)


def test_an_event_is_confident_when_its_peak_reaches_the_confident_threshold():
    from sfr_jax.inspection import events as ev
    times = np.arange(40) * 0.5
    p = np.full((40, 2), 0.1)
    p[5:15, 0] = 0.95  # peak above A's confident threshold 0.9
    p[20:30, 0] = 0.7  # fires (>= 0.5) but stays below 0.9: review
    p[5:15, 1] = 0.99  # B is never confident (inf)
    found = ev.find_events(times, p, np.array([0.5, 0.5]), ("A", "B"), confident=np.array([0.9, np.inf]))
    assert [(e.code, e.start_s, e.tier) for e in found] == [("A", 2.5, "confident"), ("B", 2.5, "review"),
                                                          ("A", 10.0, "review")]
    one_tier = ev.find_events(times, p, np.array([0.5, 0.5]), ("A", "B"))
    assert {e.tier for e in one_tier} == {"review"}


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["rules"]["global"].pop("confident_logit_threshold"), r"rules\.global\.confident_logit_threshold is missing"),
    (lambda r: r["rules"]["zscore"].update(confident_z_threshold="x"), r"rules\.zscore\.confident_z_threshold is not"),
    (lambda r: r["classes"][1].pop("confident_threshold"), r"classes\[1\]\.confident_threshold is missing"),
    (lambda r: r.update(confident_precision=1.5), r"confident_precision 1\.5 is not within 0 < P <= 1"),
])
def test_a_tiered_record_names_the_tier_key_that_is_wrong(mutate, message):
    class_set, logits, labels, names = synthetic(n=200)
    record = rec.calibrate(logits, labels, class_set, step=3, split="val", filenames=names)
    mutate(record)
    with pytest.raises(InputError, match="calibration record: " + message):
        rec.validate_record(record)
