"""Unseen-class threshold rules and calibration, measured on a val/test pair of saved logits.

    python benchmarks/calibration_rules.py --val val.npz --test test.npz [--objective f2]
    python benchmarks/calibration_rules.py --synthetic DIR [--objective f2]

Each .npz holds logits [N, C], labels [N, C], seen_ids, unseen_ids, codes, ciw (--synthetic writes such a
pair into DIR first). Everything is fitted on val and scored on test; the unseen classes' val labels serve
only the oracle:
- ZSL: F1 and F2 on the unseen columns (mean over classes, and pooled) at sigmoid 0.5, with the global
  rule, with the z-score rule (statistics of val, or of the unlabelled test images themselves), with the
  per-class oracle (thresholds fitted on the unseen classes' own val labels) and the in-sample oracle
  (fitted on the test labels: an upper bound for any threshold);
- GZSL: Sewer-ML F2-CIW and F1-Normal at 0.5 and calibrated (seen classes: their own thresholds; unseen:
  each rule), decided by sfr_jax.eval.decisions.Decisions as eval will;
- ECE (calibration.ECE_BINS bins) of sigmoid(logit) and of the calibrated probabilities on test: all, seen,
  unseen classes.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sfr_jax.eval import calibration, metrics  # noqa: E402
from sfr_jax.eval.decisions import Decisions  # noqa: E402

KEYS = ("logits", "labels", "seen_ids", "unseen_ids", "codes", "ciw")


def load(path: str) -> dict:
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in KEYS if key not in data]
        if missing:
            raise SystemExit(f"{path}: missing array(s) {missing}; expected {KEYS}")
        out = {key: data[key] for key in KEYS}
    out["labels"] = (out["labels"] == 1)
    out["codes"] = tuple(str(code) for code in out["codes"])
    return out


def synthetic_split(rng, n: int, offset, spread, separation, prevalence) -> tuple:
    """Labels with the given prevalences; logits = offset + spread * (noise + separation * label)."""
    labels = rng.random((n, offset.size)) < prevalence
    logits = offset + spread * (rng.normal(size=labels.shape) + separation * labels)
    return logits.astype(np.float32), labels


def write_synthetic(folder: str, seed: int = 0, n: int = 3000) -> tuple:
    """A val/test pair in the .npz format with Sewer-ML's classes: per-class logit offsets and spreads the
    sigmoid knows nothing of, rarer and less separable unseen classes."""
    from sfr_jax.text.classes import sewerml

    class_set = sewerml()
    rng = np.random.default_rng(seed)
    seen = np.array([c.seen for c in class_set.classes])
    offset = rng.normal(-1.0, 1.5, seen.size)
    spread = rng.uniform(0.5, 1.5, seen.size)
    separation = np.where(seen, 2.5, 1.5)
    prevalence = np.where(seen, rng.uniform(0.02, 0.15, seen.size), rng.uniform(0.005, 0.02, seen.size))
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in ("val", "test"):
        logits, labels = synthetic_split(rng, n, offset, spread, separation, prevalence)
        path = os.path.join(folder, f"{name}.npz")
        np.savez(path, logits=logits, labels=labels.astype(np.int8), seen_ids=np.flatnonzero(seen),
                 unseen_ids=np.flatnonzero(~seen), codes=np.array(class_set.codes), ciw=class_set.ciw)
        paths.append(path)
    return tuple(paths)


def unseen_scores(logits, labels, thresholds) -> dict:
    """Mean per-class F1/F2 and pooled F1 of firing at logit >= threshold (nan threshold: never fires)."""
    thresholds = np.where(np.isnan(thresholds), np.inf, thresholds)
    figs = calibration.figures(logits, labels, thresholds)
    tp = (figs["precision"] * figs["fired"]).sum()
    pooled = 2 * tp / (figs["fired"].sum() + figs["support"].sum())
    return {"mean F1": figs["f1"].mean(), "mean F2": figs["f2"].mean(), "pooled F1": pooled}


def measure(val: dict, test: dict, objective: str) -> dict:
    """All figures of the module docstring, as {section: {row: {column: value}}}."""
    if val["codes"] != test["codes"]:
        raise SystemExit(f"val and test name different classes: {val['codes']} vs {test['codes']}")
    seen = np.zeros(len(val["codes"]), dtype=bool)
    seen[val["seen_ids"]] = True
    unseen = ~seen
    fitted = calibration.fit(val["logits"], val["labels"], seen, objective)
    x, y = np.asarray(test["logits"], dtype=np.float64), test["labels"]
    test_mean, test_std = calibration.standardise_stats(x)
    rules = {
        "sigmoid 0.5": np.zeros(seen.size),
        "global rule": fitted.rule_thresholds("global"),
        "zscore rule (val stats)": fitted.rule_thresholds("zscore"),
        "zscore rule (test stats)": test_mean + fitted.z_threshold * test_std,
        "oracle (val labels)": calibration.best_thresholds(val["logits"], val["labels"], objective),
        "oracle (test labels)": calibration.best_thresholds(x, y, objective),
    }
    zsl = {name: unseen_scores(x[:, unseen], y[:, unseen], t[unseen]) for name, t in rules.items()}
    gzsl = {"sigmoid 0.5": metrics.sewer_benchmark(x, y, test["ciw"])}
    for rule in calibration.RULES:
        f = fitted.with_rule(rule)
        decisions = Decisions(val["codes"], f.scale, f.shift, f.threshold, f"calibrated, {rule} rule")
        fired = decisions.apply(x)["fired"]
        gzsl[f"calibrated, {rule} rule"] = metrics.sewer_benchmark_fired(fired, y, test["ciw"])
    before = metrics.sigmoid(x)
    after = Decisions(val["codes"], fitted.scale, fitted.shift, fitted.threshold).probabilities(x)
    ece = {}
    for name, columns in (("all", np.ones_like(seen)), ("seen", seen), ("unseen", unseen)):
        ece[name] = {"before": calibration.expected_calibration_error(before[:, columns], y[:, columns]),
                     "after": calibration.expected_calibration_error(after[:, columns], y[:, columns])}
    return {"zsl": zsl, "gzsl": gzsl, "ece": ece}


def report(results: dict, val: dict, test: dict, objective: str) -> str:
    unseen = " ".join(val["codes"][i] for i in val["unseen_ids"])
    lines = [f"fit on val ({len(val['logits'])} images), scored on test ({len(test['logits'])} images), "
             f"objective {objective}", "", f"ZSL, unseen classes {unseen}:",
             f"  {'thresholds':26s} {'mean F1':>8s} {'mean F2':>8s} {'pooled F1':>9s}"]
    for name, row in results["zsl"].items():
        lines.append(f"  {name:26s} {row['mean F1']:8.4f} {row['mean F2']:8.4f} {row['pooled F1']:9.4f}")
    lines += ["", "GZSL, Sewer-ML benchmark:", f"  {'decisions':26s} {'F2-CIW':>8s} {'F1-Normal':>9s}"]
    for name, row in results["gzsl"].items():
        lines.append(f"  {name:26s} {row['F2_CIW']:8.4f} {row['F1_normal']:9.4f}")
    lines += ["", f"ECE ({calibration.ECE_BINS} bins) on test:", f"  {'classes':26s} {'sigmoid':>8s} {'Platt':>8s}"]
    for name, row in results["ece"].items():
        lines.append(f"  {name:26s} {row['before']:8.4f} {row['after']:8.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", help="logits/labels .npz of the split the calibration is fitted on")
    parser.add_argument("--test", help="logits/labels .npz of the split it is scored on")
    parser.add_argument("--synthetic", metavar="DIR", help="write a synthetic val/test pair into DIR and use it")
    parser.add_argument("--objective", default=calibration.DEFAULT_OBJECTIVE, help="f2, f1 or recall=R")
    args = parser.parse_args(argv)
    if args.synthetic:
        args.val, args.test = write_synthetic(args.synthetic)
    if not (args.val and args.test):
        parser.error("give --val and --test, or --synthetic DIR")
    objective = calibration.parse_objective(args.objective).name
    val, test = load(args.val), load(args.test)
    print(report(measure(val, test, objective), val, test, objective))
    return 0


if __name__ == "__main__":
    sys.exit(main())
