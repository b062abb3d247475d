"""Calibration: thresholds and probabilities fitted on a labelled split, so that scores become decisions.

SFR-Net's logits are sums of cosines, an MLP and a GCN correction: nothing makes sigmoid(logit) a
probability or 0.5 a good threshold. On a labelled split this module fits, per seen class, the logit
threshold that maximises an objective (F2, F1 or a recall target) and a Platt map p = sigmoid(a*logit + b).
Unseen classes have no labels, so they get a rule fitted on the seen classes:

- "global": one logit threshold fitted over the (image, class) pairs of all seen classes pooled;
- "zscore": each class's logits standardised by its own mean/std over all images of the split (labels
  are not needed, so unseen classes have them too), one threshold on the pooled seen z-scores.

Their probabilities come from one Platt map shared over the seen classes' z-scores. Beside that
recall-oriented threshold, each class also gets a precision-oriented one (the lowest threshold whose
precision reaches `confident_precision`, 0.9 by default) by the same rules: a decision at or above it is
`confident`, one between the two is for `review`. `fit` does all of it in numpy (no JAX here);
calibration_record turns a fit into the JSON record that Decisions read.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from sfr_jax.errors import InputError
from sfr_jax.eval.metrics import sigmoid

RULES = ("zscore", "global")
# The better of the two rules on the demo's unseen classes (3 seeds, README "Decisions"): higher F2-CIW in
# all three, higher unseen F1 in two.
DEFAULT_RULE = "global"
DEFAULT_OBJECTIVE = "f2"
# The precision a `confident` decision must have on the calibration split (issue 21's default).
DEFAULT_CONFIDENT_PRECISION = 0.9
ECE_BINS = 15
# Platt slopes are kept at or above this, per standard deviation of the logits: a probability must rise
# with the logit, so that "fires at probability >= threshold" means "fires at logit >= threshold".
MIN_SLOPE = 1e-3


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


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InputError(f"unseen-class rule {rule!r} is not one of {', '.join(RULES)}")
    return rule


def best_threshold(scores, labels, objective=DEFAULT_OBJECTIVE) -> float:
    """The threshold (fires at score >= threshold) that maximises `objective` over all pairs given (any
    shape; flattened); nan when there is no positive.

    Candidates are the distinct scores. For F2/F1 the best wins, among equally good ones the highest; for
    'recall=R' the highest whose recall reaches R. The threshold returned lies halfway between the chosen
    candidate (the lowest score that fires) and the next lower score (the highest that does not), so that
    rounding or a small shift of the scores does not flip the boundary images; when all fire, it is the
    lowest score.
    """
    objective = parse_objective(objective)
    ranked = _ranked(scores, labels)
    if ranked is None:
        return math.nan
    values, tp, fired, n_pos = ranked
    if objective.kind == "recall":
        best = int(np.argmax(tp / n_pos >= objective.target))  # recall only grows as the threshold falls
    else:
        beta2 = 4.0 if objective.kind == "f2" else 1.0
        # F-beta from counts; exact ties compare equal (ratios of integers, correctly rounded), and
        # argmax takes the first, i.e. the highest threshold.
        best = int(np.argmax((1 + beta2) * tp / (beta2 * n_pos + fired)))
    return _boundary(values, best)


def precision_threshold(scores, labels, precision: float = DEFAULT_CONFIDENT_PRECISION) -> float:
    """The lowest threshold (fires at score >= threshold) whose precision over the pairs given reaches
    `precision`, placed between candidates as `best_threshold` places it; nan when there is no positive or
    no threshold reaches it. Precision is not monotone in the threshold: this is the lowest that reaches
    it, so a dip below `precision` at some higher threshold does not matter (most recall at that precision).
    """
    precision = check_precision(precision)
    ranked = _ranked(scores, labels)
    if ranked is None:
        return math.nan
    values, tp, fired, _ = ranked
    reaches = np.flatnonzero(tp >= precision * fired)  # tp / fired >= precision, without rounding a ratio
    if reaches.size == 0:
        return math.nan
    return _boundary(values, int(reaches[-1]))


def check_precision(value) -> float:
    """A precision target 0 < P <= 1, else an InputError naming it."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 < value <= 1:
        raise InputError(f"confident precision {value!r} is not a number with 0 < P <= 1 (e.g. 0.9)")
    return value


def _ranked(scores, labels):
    """(distinct scores high to low, true positives and pairs fired at each, positives), or None without
    a positive: the counts every threshold rule reads."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = (np.asarray(labels) == 1).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} differ in size")
    n_pos = int(positive.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    group_end = np.append(ranked[:-1] != ranked[1:], True)  # the last pair of each run of equal scores
    return ranked[group_end], np.cumsum(positive[order])[group_end], np.flatnonzero(group_end) + 1, n_pos


def _boundary(values, best: int) -> float:
    """Halfway between candidate `best` (the lowest score that fires) and the next lower one."""
    if best + 1 == len(values):
        return float(values[best])
    middle = 0.5 * values[best] + 0.5 * values[best + 1]
    return float(middle if middle > values[best + 1] else values[best])


def best_thresholds(scores, labels, objective=DEFAULT_OBJECTIVE) -> np.ndarray:
    """Per class (column) of [N, C] scores: `best_threshold` on that class's own labels, nan where a class
    has no positive. Given unseen classes' labels, this is the per-class oracle the rules are measured by."""
    scores, positive = as_inputs(scores, labels)
    return np.array([best_threshold(scores[:, k], positive[:, k], objective) for k in range(scores.shape[1])])


def standardise_stats(logits) -> tuple[np.ndarray, np.ndarray]:
    """Per-class mean and standard deviation of [N, C] logits over the images (labels not needed); a
    constant class gets std 1, so that its z-scores are 0 rather than undefined."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be [N, C] with N >= 1, got shape {logits.shape}")
    mean, std = logits.mean(axis=0), logits.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


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


@dataclasses.dataclass(frozen=True)
class Fit:
    """What `fit` learned, per class in the columns' order: a class fires at logit >= logit_threshold,
    its probability is sigmoid(scale * logit + shift). `own` marks classes fitted on their own labels;
    the others (unseen, or seen without both positives and negatives in the split) follow `rule`.
    A firing class is `confident` at logit >= confident_logit_threshold (never below logit_threshold;
    nan where no threshold reaches `confident_precision`: no decision of that class is confident)."""

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
    confident_precision: float = DEFAULT_CONFIDENT_PRECISION
    confident_logit_threshold: np.ndarray | None = None
    own_confident: np.ndarray | None = None
    global_confident: float = math.nan
    z_confident: float = math.nan

    @property
    def threshold(self) -> np.ndarray:
        """The thresholds in probability space, consistent with the probabilities."""
        return sigmoid(self.logit_threshold * self.scale + self.shift)

    @property
    def confident_threshold(self) -> np.ndarray:
        """The confident tier's thresholds in probability space (nan: none reaches the precision)."""
        return sigmoid(self.confident_logit_threshold * self.scale + self.shift)

    def rule_thresholds(self, rule: str, *, confident: bool = False) -> np.ndarray:
        """The logit threshold every class would get from a transfer rule ('zscore' or 'global'): the
        recall-oriented one, or with `confident` the precision-oriented one."""
        if check_rule(rule) == "global":
            return np.full(self.mean.shape, self.global_confident if confident else self.global_threshold)
        return self.mean + (self.z_confident if confident else self.z_threshold) * self.std

    def with_rule(self, rule: str) -> "Fit":
        """The same fit with the classes that are not fitted on their own labels following `rule`."""
        thresholds = np.where(self.own, self.logit_threshold, self.rule_thresholds(rule))
        own_confident = self.own_confident if self.own_confident is not None else np.full(self.own.shape, np.nan)
        confident = np.where(self.own, own_confident, self.rule_thresholds(rule, confident=True))
        # A confident decision is one that fires: never below the recall-oriented threshold.
        confident = np.where(np.isnan(confident), np.nan, np.fmax(confident, thresholds))
        return dataclasses.replace(self, rule=rule, logit_threshold=thresholds,
                                   confident_logit_threshold=confident)


def fit(logits, labels, seen, objective=DEFAULT_OBJECTIVE, rule: str = DEFAULT_RULE,
        confident_precision: float = DEFAULT_CONFIDENT_PRECISION) -> Fit:
    """Fit thresholds and probabilities on a labelled split: logits and labels [N, C], seen [C] bool.
    Each threshold comes twice: maximising `objective`, and the lowest reaching `confident_precision`.

    Only the seen classes' labels are used. A seen class needs both positives and negatives in the split
    to be fitted on its own labels; one without either follows the unseen rule like an unseen class. The
    pooled fits (rules, shared Platt map) use all seen classes' pairs, negatives of such classes included.
    """
    objective, rule = parse_objective(objective), check_rule(rule)
    confident_precision = check_precision(confident_precision)
    logits, positive = as_inputs(logits, labels)
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
    own_confident = np.full(logits.shape[1], math.nan)
    for k in np.flatnonzero(own):
        own_threshold[k] = best_threshold(logits[:, k], positive[:, k], objective)
        own_confident[k] = precision_threshold(logits[:, k], positive[:, k], confident_precision)
        scale[k], shift[k] = platt_fit(logits[:, k], positive[:, k])
    result = Fit(objective=objective, rule=rule, seen=seen, own=own, logit_threshold=own_threshold,
                 scale=scale, shift=shift, mean=mean, std=std, global_threshold=global_threshold,
                 z_threshold=z_threshold, global_platt=platt_fit(logits[:, seen], positive[:, seen]),
                 z_platt=(z_a, z_b), confident_precision=confident_precision, own_confident=own_confident,
                 global_confident=precision_threshold(logits[:, seen], positive[:, seen], confident_precision),
                 z_confident=precision_threshold(z[:, seen], positive[:, seen], confident_precision))
    return result.with_rule(rule)


def figures(logits, labels, logit_thresholds) -> dict:
    """Per class at its threshold (fires at logit >= threshold): support (positives), fired, precision,
    recall, F1, F2; an undefined ratio counts 0, as in the Sewer-ML benchmark."""
    logits, positive = as_inputs(logits, labels)
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


def as_inputs(logits, labels):
    """(float64 logits, bool positives) of [N, C] logits and labels (1 positive; 0 or -1 negative)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or logits.shape != labels.shape:
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be [N, C]")
    if not np.isfinite(logits).all():
        raise InputError(f"{int((~np.isfinite(logits)).sum())} logits are not finite (nan or inf); the model "
                         "output is broken, calibration cannot use it")
    return logits, labels == 1
