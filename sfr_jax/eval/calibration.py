"""Calibration: thresholds and probabilities fitted on a labelled split, so that scores become decisions.

SFR-Net's logits are sums of cosines, an MLP and a GCN correction: nothing makes sigmoid(logit) a
probability or 0.5 a good threshold. On a labelled split this module fits, per seen class, the logit
threshold that maximises an objective (F2, F1 or a recall target) and a Platt map p = sigmoid(a*logit + b).
Unseen classes have no labels, so they get a rule fitted on the seen classes:

- "global": one logit threshold fitted over the (image, class) pairs of all seen classes pooled;
- "zscore": each class's logits standardised by its own mean/std over all images of the split (labels
  are not needed, so unseen classes have them too), one threshold on the pooled seen z-scores.

Their probabilities come from one Platt map shared over the seen classes' z-scores. `calibrate` bundles
all of it, with per-class validation figures and ECE, in one JSON-able record (`<workdir>/calibration/
<step>.json`), which `sfr_jax.eval.decisions.Decisions.from_calibration` turns into decisions.
numpy only: no JAX here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os

import numpy as np

from sfr_jax import fileio
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval.metrics import sigmoid

FORMAT = "sfr-jax-calibration/1"
RULES = ("zscore", "global")
DEFAULT_RULE = "zscore"
DEFAULT_OBJECTIVE = "f2"
ECE_BINS = 15
# Platt slopes are kept at or above this, per standard deviation of the logits: a probability must rise
# with the logit, so that "fires at probability >= threshold" means "fires at logit >= threshold".
MIN_SLOPE = 1e-3
# Classes outside the record get z-statistics from unlabelled logits only when there are this many images.
MIN_STAT_IMAGES = 50


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a threshold maximises: 'f2', 'f1', or 'recall' (the highest threshold with recall >= target)."""

    kind: str
    target: float | None = None

    @property
    def name(self) -> str:
        return f"recall={self.target:g}" if self.kind == "recall" else self.kind


def parse_objective(text) -> Objective:
    """'f2', 'f1' or 'recall=R' (0 < R <= 1) -> Objective; anything else is an InputError."""
    if isinstance(text, Objective):
        return text
    value = str(text).strip().lower()
    if value in ("f1", "f2"):
        return Objective(value)
    if value.startswith("recall="):
        try:
            target = float(value[len("recall="):])
        except ValueError:
            target = math.nan
        if 0 < target <= 1:
            return Objective("recall", target)
    raise InputError(f"objective {text!r} is not one of f2, f1, recall=R with 0 < R <= 1 (e.g. recall=0.9)")


def _check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InputError(f"unseen-class rule {rule!r} is not one of {', '.join(RULES)}")
    return rule


# ---------------------------------------------------------------------------------------------- thresholds

def best_threshold(scores, labels, objective=DEFAULT_OBJECTIVE) -> float:
    """The threshold (fires at score >= threshold) that maximises `objective` over all pairs given (any
    shape; flattened); nan when there is no positive.

    Candidates are the distinct scores; among equally good ones the highest wins. The threshold returned
    lies halfway between the lowest score that fires and the highest one that does not, so that rounding
    or a small shift of the scores does not flip the boundary images (the lowest score when all fire).
    """
    objective = parse_objective(objective)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = (np.asarray(labels) == 1).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} differ in size")
    n_pos = int(positive.sum())
    if n_pos == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    group_end = np.append(ranked[:-1] != ranked[1:], True)  # the last pair of each run of equal scores
    values = ranked[group_end]  # distinct scores, high to low
    tp = np.cumsum(positive[order])[group_end]
    fired = np.flatnonzero(group_end) + 1
    if objective.kind == "recall":
        best = int(np.argmax(tp / n_pos >= objective.target))  # recall only grows as the threshold falls
    else:
        beta2 = 4.0 if objective.kind == "f2" else 1.0
        # F-beta from counts; exact ties compare equal (ratios of integers, correctly rounded), and
        # argmax takes the first, i.e. the highest threshold.
        best = int(np.argmax((1 + beta2) * tp / (beta2 * n_pos + fired)))
    if best + 1 == len(values):
        return float(values[best])
    middle = 0.5 * values[best] + 0.5 * values[best + 1]
    return float(middle if middle > values[best + 1] else values[best])


def best_thresholds(scores, labels, objective=DEFAULT_OBJECTIVE) -> np.ndarray:
    """Per class (column) of [N, C] scores: `best_threshold` on that class's own labels, nan where a class
    has no positive. Given unseen classes' labels, this is the per-class oracle the rules are measured by."""
    scores, positive = _inputs(scores, labels)
    return np.array([best_threshold(scores[:, k], positive[:, k], objective) for k in range(scores.shape[1])])


def standardise_stats(logits) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean and standard deviation of [N, C] logits over the images (labels not needed); a
    constant class gets std 1, so that its z-scores are 0 rather than undefined."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be [N, C] with N >= 1, got shape {logits.shape}")
    mean, std = logits.mean(axis=0), logits.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


# ---------------------------------------------------------------------------------------------- probabilities

def platt_fit(scores, labels, *, smoothing: bool = True) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of p = sigmoid(a * score + b) over all pairs given, by Newton's method.

    With `smoothing` (Platt 1999) the targets are (N+ + 1) / (N+ + 2) for positives and 1 / (N- + 2) for
    negatives instead of 1 and 0: the likelihood then has a finite maximum even on separable data. The
    slope is kept >= MIN_SLOPE per standard deviation of the scores (then b is refitted alone).
    """
    x = np.asarray(scores, dtype=np.float64).ravel()
    positive = (np.asarray(labels) == 1).ravel()
    if x.shape != positive.shape or x.size == 0:
        raise ValueError(f"platt_fit needs as many labels as scores (>= 1), got {x.shape} and {positive.shape}")
    n_pos = positive.sum()
    n_neg = x.size - n_pos
    if smoothing:
        target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    else:
        target = positive.astype(np.float64)
    # Fit on standardised scores: the 2x2 Newton system is then well conditioned whatever the logit range.
    center, spread = x.mean(), x.std()
    spread = spread if spread > 0 else 1.0
    u = (x - center) / spread
    prior = float(np.clip(target.mean(), 1e-12, 1 - 1e-12))
    slope, intercept = _newton(u, target, np.array([0.0, math.log(prior / (1 - prior))]), fit_slope=True)
    if slope < MIN_SLOPE:
        slope, intercept = _newton(u, target, np.array([MIN_SLOPE, intercept]), fit_slope=False)
    return float(slope / spread), float(intercept - slope * center / spread)


def _logistic_loss(u, target, w) -> float:
    f = w[0] * u + w[1]
    return float(np.sum(np.logaddexp(0.0, f) - target * f))


def _newton(u, target, w, *, fit_slope: bool, steps: int = 100):
    """Minimise the logistic loss of sigmoid(w0 * u + w1) against soft targets; w0 fixed unless fit_slope."""
    features = np.stack([u, np.ones_like(u)], axis=1) if fit_slope else np.ones((u.size, 1))
    ridge = 1e-12 * u.size  # numerical only: keeps the system solvable when every pair saturates
    for _ in range(steps):
        p = sigmoid(w[0] * u + w[1])
        grad = features.T @ (p - target)
        hess = (features * (p * (1 - p))[:, None]).T @ features + ridge * np.eye(features.shape[1])
        step = np.linalg.solve(hess, grad)
        full = np.zeros(2)
        full[2 - features.shape[1]:] = step
        loss, rate = _logistic_loss(u, target, w), 1.0
        while rate > 1e-8 and _logistic_loss(u, target, w - rate * full) > loss:
            rate *= 0.5  # Newton can overshoot while far from the optimum
        w = w - rate * full
        if np.max(np.abs(rate * full)) < 1e-12 * (1 + np.max(np.abs(w))):
            break
    return float(w[0]), float(w[1])


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """ECE over all pairs given: sum over equal-width bins of |positives - sum of probabilities| / pairs.
    A probability p falls in bin floor(bins * p) (p = 1 in the last)."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    positive = (np.asarray(labels) == 1).ravel()
    if p.shape != positive.shape or p.size == 0:
        raise ValueError(f"ECE needs as many labels as probabilities (>= 1), got {p.shape} and {positive.shape}")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    confidence = np.bincount(which, weights=p, minlength=bins)
    hits = np.bincount(which, weights=positive.astype(np.float64), minlength=bins)
    return float(np.abs(hits - confidence).sum() / p.size)


# ---------------------------------------------------------------------------------------------- the fit

@dataclasses.dataclass(frozen=True)
class Fit:
    """What `fit` learned, per class in the columns' order: a class fires at logit >= logit_threshold,
    its probability is sigmoid(scale * logit + shift). `own` marks classes fitted on their own labels;
    the others (unseen, or seen without both positives and negatives in the split) follow `rule`."""

    objective: Objective
    rule: str
    seen: np.ndarray
    own: np.ndarray
    logit_threshold: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    global_threshold: float
    z_threshold: float
    global_platt: tuple
    z_platt: tuple

    @property
    def threshold(self) -> np.ndarray:
        """The thresholds in probability space, consistent with the probabilities."""
        return sigmoid(self.logit_threshold * self.scale + self.shift)

    def rule_thresholds(self, rule: str) -> np.ndarray:
        """The logit threshold every class would get from a transfer rule ('zscore' or 'global')."""
        if _check_rule(rule) == "global":
            return np.full(self.mean.shape, self.global_threshold)
        return self.mean + self.z_threshold * self.std

    def with_rule(self, rule: str) -> "Fit":
        """The same fit with the classes that are not fitted on their own labels following `rule`."""
        thresholds = np.where(self.own, self.logit_threshold, self.rule_thresholds(rule))
        return dataclasses.replace(self, rule=rule, logit_threshold=thresholds)


def fit(logits, labels, seen, objective=DEFAULT_OBJECTIVE, rule: str = DEFAULT_RULE) -> Fit:
    """Fit thresholds and probabilities on a labelled split: logits and labels [N, C], seen [C] bool.

    Only the seen classes' labels are used. A seen class needs both positives and negatives in the split
    to be fitted on its own labels; one without either follows the unseen rule like an unseen class. The
    pooled fits (rules, shared Platt map) use all seen classes' pairs, negatives of such classes included.
    """
    objective, rule = parse_objective(objective), _check_rule(rule)
    logits, positive = _inputs(logits, labels)
    seen = np.asarray(seen, dtype=bool)
    if seen.shape != (logits.shape[1],):
        raise ValueError(f"seen has shape {seen.shape}, expected ({logits.shape[1]},) one flag per class")
    n_pos = positive.sum(axis=0)
    own = seen & (n_pos > 0) & (n_pos < logits.shape[0])
    if not own.any():
        raise InputError("no seen class has both positive and negative labels in this split: calibration "
                         "needs a split labelled with the seen classes")
    mean, std = standardise_stats(logits)
    z = (logits - mean) / std
    global_threshold = best_threshold(logits[:, seen], positive[:, seen], objective)
    z_threshold = best_threshold(z[:, seen], positive[:, seen], objective)
    z_a, z_b = platt_fit(z[:, seen], positive[:, seen])
    # The shared map on z = (logit - mean) / std, written as a map on the class's own logits.
    scale, shift = z_a / std, z_b - z_a * mean / std
    own_threshold = np.full(logits.shape[1], math.nan)
    for k in np.flatnonzero(own):
        own_threshold[k] = best_threshold(logits[:, k], positive[:, k], objective)
        scale[k], shift[k] = platt_fit(logits[:, k], positive[:, k])
    result = Fit(objective=objective, rule=rule, seen=seen, own=own, logit_threshold=own_threshold,
                 scale=scale, shift=shift, mean=mean, std=std, global_threshold=global_threshold,
                 z_threshold=z_threshold, global_platt=platt_fit(logits[:, seen], positive[:, seen]),
                 z_platt=(z_a, z_b))
    return result.with_rule(rule)


def figures(logits, labels, logit_thresholds) -> dict:
    """Per class at its threshold (fires at logit >= threshold): support (positives), fired, precision,
    recall, F1, F2; an undefined ratio counts 0, as in the Sewer-ML benchmark."""
    logits, positive = _inputs(logits, labels)
    fired = logits >= np.asarray(logit_thresholds, dtype=np.float64)[None]
    tp = (fired & positive).sum(axis=0)
    support, n_fired = positive.sum(axis=0), fired.sum(axis=0)
    precision, recall = _ratio(tp, n_fired), _ratio(tp, support)
    return {"support": support, "fired": n_fired, "precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "f2": _ratio(5 * precision * recall, 4 * precision + recall)}


def _ratio(num, den):
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _inputs(logits, labels):
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape != labels.shape:
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be [N, C]")
    if not np.isfinite(logits).all():
        raise InputError(f"{int((~np.isfinite(logits)).sum())} logits are not finite (nan or inf); the model "
                         "output is broken, calibration cannot use it")
    return logits, labels == 1


# ---------------------------------------------------------------------------------------------- the record

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
              rule: str = DEFAULT_RULE) -> dict:
    """The calibration record of a model step on a labelled split: logits and labels [N, C] in
    `class_set` order, `filenames` [N] naming the images (for the split's digest and the ECE hold-out).

    Thresholds and Platt maps are fitted on the whole split. ECE before (sigmoid) and after calibration
    is measured on a held-out half: the images are ordered by filename, a fit on the first half is
    scored on the second (Sewer-ML's filenames run in video order, so the halves share few videos).
    Unseen classes' labels, where the split has them, only feed the figures and ECE, never the fit.
    """
    filenames = [str(name) for name in filenames]
    logits, positive = _inputs(logits, labels)
    if len(filenames) != logits.shape[0] or logits.shape[1] != class_set.num_classes:
        raise ValueError(f"logits {logits.shape} do not fit {len(filenames)} filenames x "
                         f"{class_set.num_classes} classes of {class_set.name!r}")
    seen = np.array([c.seen for c in class_set.classes])
    result = fit(logits, positive, seen, objective, rule)
    figs = figures(logits, positive, result.logit_threshold)
    threshold = result.threshold
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
        })
    return {
        "format": FORMAT,
        "step": int(step),
        "class_set": {"name": class_set.name, "digest": class_set_digest(class_set)},
        "split": {"name": str(split), "digest": split_digest(filenames, positive), "images": len(filenames)},
        "objective": result.objective.name,
        "unseen_rule": result.rule,
        "rules": {
            "global": {"logit_threshold": result.global_threshold,
                       "platt": {"a": result.global_platt[0], "b": result.global_platt[1]}},
            "zscore": {"z_threshold": result.z_threshold,
                       "platt": {"a": result.z_platt[0], "b": result.z_platt[1]}},
        },
        "classes": classes,
        "ece": held_out_ece(logits, positive, seen, filenames, result.objective, result.rule),
    }


def held_out_ece(logits, labels, seen, filenames, objective=DEFAULT_OBJECTIVE, rule: str = DEFAULT_RULE) -> dict:
    """ECE (15 bins) of sigmoid(logit) and of the calibrated probabilities on the second half of the images
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
    """Where `sfr-jax calibrate` keeps the record of a step: <workdir>/calibration/<step>.json."""
    return os.path.join(workdir, "calibration", f"{int(step)}.json")


def write_record(path: str, record: dict) -> str:
    """Write a record atomically (a reader never sees half of one); returns the absolute path."""
    return fileio.write_text(path, json.dumps(record, indent=1, allow_nan=False) + "\n")


_REQUIRED = ("format", "step", "class_set", "split", "objective", "unseen_rule", "rules", "classes")


def read_record(path: str) -> dict:
    """Load and validate a record; MissingInput when absent, InputError naming the file when unusable."""
    if not os.path.isfile(path):
        raise MissingInput(f"no calibration file {path}; run `sfr-jax calibrate` for that step first")
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable calibration file ({error}); run `sfr-jax calibrate` again")
    return validate_record(record, origin=path)


def validate_record(record, origin: str = "calibration record") -> dict:
    """The record itself when it has this format's keys and values; an InputError naming what is wrong."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise InputError(f"{origin}: format {found!r} is not {FORMAT!r}; run `sfr-jax calibrate` again")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise InputError(f"{origin}: missing key(s) {missing}; run `sfr-jax calibrate` again")
    _check_rule(record["unseen_rule"])
    for i, entry in enumerate(record["classes"]):
        keys = ("code", "threshold", "platt", "z")
        if not isinstance(entry, dict) or any(key not in entry for key in keys):
            raise InputError(f"{origin}: classes[{i}] lacks one of {keys}; run `sfr-jax calibrate` again")
    return record


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
    """(codes, scale, shift, threshold, notes) for Decisions over `classes` (a ClassSet, or class codes).

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
    absent = []
    for k, (code, text) in enumerate(zip(codes, texts)):
        entry = known.get(code)
        if entry is None or (text is not None and entry.get("text") not in (None, text)):
            absent.append(k)
            continue
        scale[k], shift[k] = entry["platt"]["a"], entry["platt"]["b"]
        threshold[k] = entry["threshold"]
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
            else:
                logit_threshold = np.full(len(absent), rules["global"]["logit_threshold"])
            notes.append(f"{names} not in the calibration: {record['unseen_rule']} rule, z-statistics over "
                         f"{unlabelled.shape[0]} unlabelled images")
        else:
            scale[absent], shift[absent] = rules["global"]["platt"]["a"], rules["global"]["platt"]["b"]
            logit_threshold = np.full(len(absent), rules["global"]["logit_threshold"])
            notes.append(f"{names} not in the calibration: global rule (no z-statistics: fewer than "
                         f"{MIN_STAT_IMAGES} unlabelled images)")
        threshold[absent] = sigmoid(logit_threshold * scale[absent] + shift[absent])
    return codes, scale, shift, threshold, notes
