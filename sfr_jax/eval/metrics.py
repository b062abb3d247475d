"""Evaluation metrics (SPEC §7-§8): per-class AP / mAP, top-k O/C precision-recall-F1, Sewer-ML F2-CIW.

All functions take numpy arrays scores [N, C] and 0/1 labels [N, C] (-1 counts as 0, as in the reference)
and are vectorised over classes, so 130k x 17 scores take well under a second.
"""
import numpy as np


def _as_inputs(scores, labels):
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be [N, C]")
    return scores, labels == 1


def _div(num, den):
    """num / den elementwise, 0 where den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def average_precision(scores, labels) -> np.ndarray:
    """Per-class AP exactly as sklearn's average_precision_score (tied scores form one threshold); nan
    for a class without positives."""
    scores, positive = _as_inputs(scores, labels)
    n = scores.shape[0]
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    sorted_pos = np.take_along_axis(positive, order, axis=0)
    tp = np.cumsum(sorted_pos, axis=0, dtype=np.float64)
    # Each item's precision is read at the END of its tie group: the threshold admits the whole group.
    rank = np.arange(n)[:, None]
    is_end = np.ones_like(sorted_pos)
    is_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    group_end = np.minimum.accumulate(np.where(is_end, rank, n)[::-1], axis=0)[::-1]
    precision_at_end = np.take_along_axis(tp, group_end, axis=0) / (group_end + 1)
    n_pos = positive.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(sorted_pos, precision_at_end, 0.0).sum(axis=0) / n_pos
    return np.where(n_pos > 0, ap, np.nan)


def mean_average_precision(scores, labels) -> float:
    """Mean AP over the classes that have at least one positive (0.0 when none has, as the reference)."""
    ap = average_precision(scores, labels)
    ap = ap[~np.isnan(ap)]
    return float(ap.mean()) if ap.size else 0.0


def topk_predictions(scores, k: int) -> np.ndarray:
    """0/1 [N, C]: the k highest scores of each row (k > C selects all). Ties go to the lower class
    index; the reference's torch.topk leaves the tie order unspecified."""
    scores = np.asarray(scores)
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got k={k}")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    pred = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(pred, top, True, axis=1)
    return pred


def _f1(p, r):
    return float(_div(2 * p * r, p + r))


def counts_metrics(pred, positive) -> dict:
    """OP/OR/OF1 and CP/CR/CF1 from boolean predictions, as the reference's cal_metrics: a class with
    TP = 0 has precision and recall 0, and CP/CR average over ALL classes."""
    tp = (pred & positive).sum(axis=0)
    fp = (pred & ~positive).sum(axis=0)
    fn = (~pred & positive).sum(axis=0)
    cp = float(_div(tp, tp + fp).mean())
    cr = float(_div(tp, tp + fn).mean())
    op = float(_div(tp.sum(), (tp + fp).sum()))
    or_ = float(_div(tp.sum(), (tp + fn).sum()))
    return {"OP": op, "OR": or_, "OF1": _f1(op, or_), "CP": cp, "CR": cr, "CF1": _f1(cp, cr)}


def topk_metrics(scores, labels, k: int) -> dict:
    """{OP, OR, OF1, CP, CR, CF1} with the k top-scoring classes of each image predicted positive
    (the paper's F1@k is OF1)."""
    scores, positive = _as_inputs(scores, labels)
    return counts_metrics(topk_predictions(scores, k), positive)


def sigmoid(x):
    """1 / (1 + exp(-x)) in float64, to full relative precision in both tails (a probability of 1e-12 is
    not rounded to 0) and without overflow warnings for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sewer_benchmark(scores, labels, ciw, *, from_logits: bool = True, threshold=0.5) -> dict:
    """Sewer-ML's benchmark (Haurum & Moeslund 2021) with classes firing at sigmoid(logit) >= threshold:
    one threshold for all classes (the benchmark's 0.5) or one per class ([C], in probability space)."""
    scores, positive = _as_inputs(scores, labels)
    threshold = np.asarray(threshold, dtype=np.float64)
    if threshold.shape not in ((), (scores.shape[1],)):
        raise ValueError(f"threshold has shape {threshold.shape}, expected a number or ({scores.shape[1]},)")
    probs = sigmoid(scores) if from_logits else scores
    return sewer_benchmark_fired(probs >= threshold, positive, ciw)


def sewer_benchmark_fired(fired, labels, ciw) -> dict:
    """Sewer-ML's benchmark metrics of decisions already taken (fired [N, C] bool, e.g. from Decisions):
    F2-CIW over the classes weighted by `ciw`, and F1/F2 of the implicit "normal" class (no class fires /
    no label).

    Follows the benchmark's own scoring code: multilabel_sewerml_evaluation in multilabel_metrics.py of
    github JoakimHaurum/MSHViT (commit 33335ec), Haurum's copy of the code published with Sewer-ML at
    bitbucket.org/aauvap/sewer-ml (metrics.py, `evaluation`). A class that is never predicted has
    precision 0 (the script sets its Np to 1); a class without positives has an undefined recall (0 here,
    nan there); every undefined F-score counts 0, so such a class still weighs in F2-CIW's denominator.
    """
    fired = np.asarray(fired, dtype=bool)
    _, positive = _as_inputs(fired, labels)
    ciw = np.asarray(ciw, dtype=np.float64)
    if ciw.shape != (fired.shape[1],):
        raise ValueError(f"ciw has shape {ciw.shape}, expected ({fired.shape[1]},) one weight per class")
    pred = np.concatenate([fired, ~fired.any(axis=1)[:, None]], axis=1)
    positive = np.concatenate([positive, ~positive.any(axis=1)[:, None]], axis=1)
    n_tp = (pred & positive).sum(axis=0)
    precision = _div(n_tp, pred.sum(axis=0))
    recall = _div(n_tp, positive.sum(axis=0))
    f1 = _div(2 * precision * recall, precision + recall)
    f2 = _div(5 * precision * recall, 4 * precision + recall)
    return {
        "F2_CIW": float(np.sum(f2[:-1] * ciw) / np.sum(ciw)),
        "F1_normal": float(f1[-1]),
        "F2_normal": float(f2[-1]),
        "F2_class": f2[:-1],
        "precision_class": precision[:-1],
        "recall_class": recall[:-1],
    }


def evaluate(scores, labels, ks=(1, 3)) -> dict:
    """The paper's table row for one mode: mAP plus top-k metrics for each k, as flat 'OF1@3'-style keys."""
    out = {"mAP": mean_average_precision(scores, labels)}
    for k in ks:
        out.update({f"{name}@{k}": value for name, value in topk_metrics(scores, labels, k).items()})
    return out
