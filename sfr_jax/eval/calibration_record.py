"""The calibration record: one JSON file per model step (<workdir>/calibration/<step>.json) that holds a
calibration.fit with what it was fitted for and how well it does, and turns back into decision arrays.

A record names the step, the class set (digest over codes, phrases, descriptions), the split (name, digest
of its filenames and labels), the objective and the unseen-class rule; per class: code, seen, how it was
fitted, the threshold in probability space and in logit space, the Platt map, the z-statistics and the
validation figures at the threshold; and ECE before/after calibration on a held-out half of the split.
Since issue 21 also the precision-oriented tier: `confident_precision` and per class `confident_threshold`
(null where no threshold reaches that precision). A record without them (older) still loads: one tier.
"""
from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np

from sfr_jax import fileio, records
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval.calibration import (DEFAULT_CONFIDENT_PRECISION, DEFAULT_OBJECTIVE, DEFAULT_RULE, ECE_BINS,
                                      as_inputs, check_precision, check_rule, expected_calibration_error,
                                      figures, fit, standardise_stats)
from sfr_jax.eval.metrics import sigmoid
from sfr_jax.workdir import Workdir

FORMAT = "sfr-jax-calibration/1"
# A class's threshold needs at least this many positive images on the split to sit between examples; a
# calibration with fewer than half of its seen classes so supported cannot stand (calibrate refuses it).
MIN_POSITIVES = 2
# Classes outside the record get z-statistics from unlabelled logits only when there are this many images.
MIN_STAT_IMAGES = 50


def class_set_digest(class_set) -> str:
    """sha256 over the classes' codes, phrases and descriptions, in order: the logits of every class
    depend on all of them (GR's graph is built from the phrases)."""
    payload = [[c.code, c.phrase, c.description] for c in class_set.classes]
    return "sha256:" + hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def class_text_digest(defect_class) -> str:
    """Short digest of one class's phrase and description, to tell a reused code with other text."""
    payload = json.dumps([defect_class.phrase, defect_class.description], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def split_digest(filenames, labels) -> str:
    """sha256 over a split's (filename, 0/1 label row) pairs in filename order (order-independent)."""
    filenames = [str(name) for name in filenames]
    positive = np.asarray(labels) == 1
    if positive.ndim != 2 or positive.shape[0] != len(filenames):
        raise ValueError(f"{len(filenames)} filenames for labels of shape {positive.shape}")
    digest = hashlib.sha256()
    for i in sorted(range(len(filenames)), key=filenames.__getitem__):
        digest.update(f"{filenames[i]}\t{''.join('1' if v else '0' for v in positive[i])}\n".encode())
    return "sha256:" + digest.hexdigest()


def calibrate(logits, labels, class_set, *, step: int, split: str, filenames, objective=DEFAULT_OBJECTIVE,
              rule: str = DEFAULT_RULE, confident_precision: float = DEFAULT_CONFIDENT_PRECISION) -> dict:
    """The calibration record of a model step on a labelled split: logits and labels [N, C] in
    `class_set` order, `filenames` [N] naming the images (for the split's digest and the ECE hold-out).

    Thresholds and Platt maps are fitted on the whole split. ECE before (sigmoid) and after calibration
    is measured on a held-out half: the images are ordered by filename, a fit on the first half is
    scored on the second. Contiguous halves, not interleaved ones: where the names follow the videos
    (numbered frames), neighbouring near-duplicate frames then rarely fall on both sides.
    Unseen classes' labels, where the split has them, only feed the figures and ECE, never the fit.
    """
    filenames = [str(name) for name in filenames]
    logits, positive = as_inputs(logits, labels)
    if len(filenames) != logits.shape[0] or logits.shape[1] != class_set.num_classes:
        raise ValueError(f"logits {logits.shape} do not fit {len(filenames)} filenames x "
                         f"{class_set.num_classes} classes of {class_set.name!r}")
    seen = np.array([c.seen for c in class_set.classes])
    result = fit(logits, positive, seen, objective, rule, confident_precision)
    figs = figures(logits, positive, result.logit_threshold)
    # A class with no confident threshold never fires confidently: +inf counts nothing as fired.
    confident_logit = np.where(np.isnan(result.confident_logit_threshold), np.inf, result.confident_logit_threshold)
    confident_figs = figures(logits, positive, confident_logit)
    threshold, confident = result.threshold, result.confident_threshold
    classes = []
    for k, c in enumerate(class_set.classes):
        classes.append({
            "code": c.code, "seen": bool(c.seen), "text": class_text_digest(c),
            "fitted": "own labels" if result.own[k] else result.rule,
            "threshold": float(threshold[k]), "logit_threshold": float(result.logit_threshold[k]),
            "platt": {"a": float(result.scale[k]), "b": float(result.shift[k])},
            "z": {"mean": float(result.mean[k]), "std": float(result.std[k])},
            "validation": {name: (int(v[k]) if name in ("support", "fired") else float(v[k]))
                           for name, v in figs.items()},
            "confident_threshold": _finite_or_none(confident[k]),
            "confident_logit_threshold": _finite_or_none(result.confident_logit_threshold[k]),
            "confident_validation": {name: (int(v[k]) if name in ("support", "fired") else float(v[k]))
                                     for name, v in confident_figs.items()},
        })
    return {
        "format": FORMAT,
        "step": int(step),
        "class_set": {"name": class_set.name, "digest": class_set_digest(class_set)},
        "split": {"name": str(split), "digest": split_digest(filenames, positive), "images": len(filenames)},
        "objective": result.objective.name,
        "unseen_rule": result.rule,
        "confident_precision": result.confident_precision,
        "rules": {
            "global": {"logit_threshold": result.global_threshold,
                       "confident_logit_threshold": _finite_or_none(result.global_confident),
                       "platt": {"a": result.global_platt[0], "b": result.global_platt[1]}},
            "zscore": {"z_threshold": result.z_threshold,
                       "confident_z_threshold": _finite_or_none(result.z_confident),
                       "platt": {"a": result.z_platt[0], "b": result.z_platt[1]}},
        },
        "classes": classes,
        "ece": held_out_ece(logits, positive, seen, filenames, result.objective, result.rule),
    }


def _finite_or_none(value):
    """JSON has no nan: a threshold that does not exist is null."""
    value = float(value)
    return value if math.isfinite(value) else None


def has_tiers(record: dict) -> bool:
    """Whether a record holds the precision-oriented tier (records older than issue 21 do not)."""
    return "confident_precision" in record


def short_classes(labels, class_set) -> list[tuple[str, int]]:
    """[(code, positives)] of the seen classes with fewer than MIN_POSITIVES positives on the split, when
    they are more than half of the seen classes (the calibration cannot stand); [] when it can."""
    positives = (np.asarray(labels) == 1).sum(axis=0)
    seen = list(class_set.seen_ids)
    short = [(class_set.codes[k], int(positives[k])) for k in seen if positives[k] < MIN_POSITIVES]
    return short if 2 * len(short) > len(seen) else []


def held_out_ece(logits, labels, seen, filenames, objective=DEFAULT_OBJECTIVE,
                 rule: str = DEFAULT_RULE) -> dict:
    """ECE (ECE_BINS bins) of sigmoid(logit) and of the calibrated probabilities on the second half of the images
    in filename order, fitted on the first half; over all classes, the seen and the unseen ones."""
    order = sorted(range(len(filenames)), key=lambda i: str(filenames[i]))
    first, second = np.array(order[:len(order) // 2], dtype=int), np.array(order[len(order) // 2:], dtype=int)
    out = {"bins": ECE_BINS, "held_out": "second half of the images in filename order (fit on the first)",
           "fit_images": int(first.size), "held_out_images": int(second.size)}
    if first.size == 0:
        out["error"] = "too few images to hold half out"
        return out
    try:
        half = fit(logits[first], labels[first], seen, objective, rule)
    except InputError as error:
        out["error"] = f"no fit on the first half: {error}"
        return out
    before = sigmoid(logits[second])
    after = sigmoid(logits[second] * half.scale + half.shift)
    y = np.asarray(labels)[second]
    seen = np.asarray(seen, dtype=bool)
    for name, columns in (("all", np.ones_like(seen)), ("seen", seen), ("unseen", ~seen)):
        if columns.any():
            out[name] = {"before": expected_calibration_error(before[:, columns], y[:, columns]),
                         "after": expected_calibration_error(after[:, columns], y[:, columns]),
                         "positives": int((y[:, columns] == 1).sum())}
    return out


def record_path(workdir: str, step: int) -> str:
    """Where `sfr-jax calibrate` keeps the record of a step (sfr_jax.workdir.Workdir.calibration_file)."""
    return Workdir(workdir).calibration_file(step)


def write_record(path: str, record: dict) -> str:
    """Write a record atomically (a reader never sees half of one); returns the absolute path."""
    return fileio.write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")


_HINT = "run `sfr-jax calibrate` again"


def read_record(path: str) -> dict:
    """Load and validate a record; MissingInput when absent, InputError naming the file when unusable."""
    if not os.path.isfile(path):
        raise MissingInput(f"no calibration file {path}; run `sfr-jax calibrate` for that step first")
    return validate_record(records.read(path, {}, _HINT, what="calibration file"), origin=path)


def validate_record(record, origin: str = "calibration record") -> dict:
    """The record itself when it has this format's keys and numbers (records.CALIBRATION); an InputError
    naming the key that is wrong. Decisions read each class's `threshold` (probability) and `platt`;
    `logit_threshold` is for people."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"{origin}: format {found!r} is not {FORMAT!r}; {_HINT}")
    records.check(record, records.CALIBRATION, origin, _HINT)
    check_rule(record["unseen_rule"])
    if has_tiers(record):
        _validate_tiers(record, origin)
    return record


def _validate_tiers(record: dict, origin: str) -> None:
    """The confident tier's numbers (records.CALIBRATION_TIERS), and its precision within 0 < P <= 1."""
    records.check(record, records.CALIBRATION_TIERS, origin, _HINT)
    try:
        check_precision(record["confident_precision"])
    except InputError:
        raise InputError(f"{origin}: confident_precision {record['confident_precision']!r} is not within "
                         f"0 < P <= 1; {_HINT}") from None


def check_record(record: dict, *, step: int, class_set, origin: str = "calibration record") -> None:
    """Refuse a record made for another step or class set (`class_set`: a ClassSet or its digest), with an
    InputError naming both."""
    digest = class_set if isinstance(class_set, str) else class_set_digest(class_set)
    name = "" if isinstance(class_set, str) else f"{class_set.name!r} "
    ours = record["class_set"]
    if int(record["step"]) != int(step) or ours.get("digest") != digest:
        raise InputError(
            f"{origin} was made for step {record['step']} with class set {ours.get('name')!r} "
            f"({str(ours.get('digest'))[:19]}), but the model is step {step} with class set {name}"
            f"({digest[:19]}); run `sfr-jax calibrate` for step {step}")


def decision_arrays(record: dict, classes, unlabelled_logits=None) -> tuple:
    """(codes, scale, shift, threshold, confident, notes) for Decisions over `classes` (a ClassSet, or
    class codes). `confident` holds the confident tier's probability thresholds (inf: this class is never
    confident), or is None for a record without tiers (older than issue 21).

    A class found in the record (same code, and same text when `classes` is a ClassSet) keeps its fit.
    Any other class (a user's --classes) follows the unseen rule: with z-statistics from
    `unlabelled_logits` [M, len(classes)] when M >= MIN_STAT_IMAGES (the record's rule and shared Platt
    map), otherwise the "global" rule (pooled seen logit threshold and Platt map), whose logits need no
    statistics. `notes` says which classes took which way, for Decisions.source.
    """
    if hasattr(classes, "classes"):
        codes = tuple(c.code for c in classes.classes)
        texts = [class_text_digest(c) for c in classes.classes]
    else:
        codes, texts = tuple(classes), [None] * len(classes)
    known = {entry["code"]: entry for entry in record["classes"]}
    n = len(codes)
    scale, shift, threshold = np.zeros(n), np.zeros(n), np.zeros(n)
    tiers = has_tiers(record)
    confident = np.full(n, np.inf)
    absent = []
    for k, (code, text) in enumerate(zip(codes, texts)):
        entry = known.get(code)
        if entry is None or (text is not None and entry.get("text") not in (None, text)):
            absent.append(k)
            continue
        scale[k], shift[k] = entry["platt"]["a"], entry["platt"]["b"]
        threshold[k] = entry["threshold"]
        if tiers and entry["confident_threshold"] is not None:
            confident[k] = entry["confident_threshold"]
    notes = []
    if absent:
        stats = None
        if unlabelled_logits is not None:
            unlabelled = np.asarray(unlabelled_logits, dtype=np.float64)
            if unlabelled.ndim != 2 or unlabelled.shape[1] != n:
                raise ValueError(f"unlabelled logits of shape {unlabelled.shape} do not fit {n} classes")
            if unlabelled.shape[0] >= MIN_STAT_IMAGES:
                stats = standardise_stats(unlabelled[:, absent])
        rules = record["rules"]
        names = " ".join(codes[k] for k in absent)
        if stats is not None:
            mean, std = stats
            z_a, z_b = rules["zscore"]["platt"]["a"], rules["zscore"]["platt"]["b"]
            scale[absent], shift[absent] = z_a / std, z_b - z_a * mean / std
            if record["unseen_rule"] == "zscore":
                logit_threshold = mean + rules["zscore"]["z_threshold"] * std
                confident_z = rules["zscore"].get("confident_z_threshold")
                confident_logit = np.full(len(absent), np.inf) if confident_z is None else mean + confident_z * std
            else:
                logit_threshold = np.full(len(absent), rules["global"]["logit_threshold"])
                confident_logit = _global_confident(rules, len(absent))
            notes.append(f"{names} not in the calibration: {record['unseen_rule']} rule, z-statistics over "
                         f"{unlabelled.shape[0]} unlabelled images")
        else:
            scale[absent], shift[absent] = rules["global"]["platt"]["a"], rules["global"]["platt"]["b"]
            logit_threshold = np.full(len(absent), rules["global"]["logit_threshold"])
            confident_logit = _global_confident(rules, len(absent))
            notes.append(f"{names} not in the calibration: global rule (no z-statistics: fewer than "
                         f"{MIN_STAT_IMAGES} unlabelled images)")
        threshold[absent] = sigmoid(logit_threshold * scale[absent] + shift[absent])
        with np.errstate(over="ignore", invalid="ignore"):
            mapped = sigmoid(confident_logit * scale[absent] + shift[absent])
        confident[absent] = np.where(np.isinf(confident_logit), np.inf, np.fmax(mapped, threshold[absent]))
    return codes, scale, shift, threshold, (confident if tiers else None), notes


def _global_confident(rules: dict, n: int) -> np.ndarray:
    value = rules["global"].get("confident_logit_threshold")
    return np.full(n, np.inf if value is None else float(value))
