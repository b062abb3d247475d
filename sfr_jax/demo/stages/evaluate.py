"""Stage evaluate: plain CLIP zero-shot (no RS, MEF, GR) and every trained model on the cctv test split with
the same evaluator; results.json, the PR plot of the unseen classes, the test logits, ECE before/after."""
from __future__ import annotations

import json

from sfr_jax.demo import pr, scoring, summary
from sfr_jax.demo.engine import Stage
from sfr_jax.demo.stages import train
from sfr_jax.eval.calibration import expected_calibration_error
from sfr_jax.eval.metrics import sigmoid
from sfr_jax.fileio import write_json
from sfr_jax.workdir import Workdir

PLAIN_CLIP = "CLIP (zero-shot)"


def run(ctx) -> dict:
    """Evaluate plain CLIP and every trained model on the cctv test split; write results.json and the plot."""
    results, curves = {}, {}
    first = None
    for label, workdir in train.workdirs(ctx).items():
        res, logits, labels, class_set, decisions = scoring.evaluate_workdir(workdir)
        results[label] = res
        curves[label] = pr.pr_curve(logits["zsl"], labels[:, list(class_set.ids("zsl"))])
        first = first or (workdir, labels, class_set)
    sfr_logits = logits  # the last row is SFR-Net, the calibrated one
    scores = scoring.save_scores(ctx.path("scores_test.npz"), sfr_logits, labels, class_set)
    ece = {"before": expected_calibration_error(sigmoid(sfr_logits["gzsl"]), labels),
           "after": expected_calibration_error(decisions.probabilities(sfr_logits["gzsl"]), labels)}
    workdir, labels, class_set = first
    base, base_logits, _ = scoring.evaluate_plain_clip(Workdir(workdir).read_config(), ctx.path("plain_clip"))
    results = {PLAIN_CLIP: base, **results}
    unseen = labels[:, list(class_set.ids("zsl"))]
    curves = {PLAIN_CLIP: pr.pr_curve(base_logits["zsl"], unseen), **curves}
    chance = {"zsl": float(unseen.mean(0).mean()), "gzsl": float(labels.mean(0).mean()),
              "zsl_pairs": float(unseen.mean())}
    plot = pr.plot_pr(ctx.path("pr_zsl.png"), curves, "ML-ZSL, cctv test split: 5 unseen classes, micro-averaged",
                      chance["zsl_pairs"])
    payload = {"rows": results, "chance": chance, "num_test_images": int(labels.shape[0]),
               "unseen": [class_set.codes[i] for i in class_set.ids("zsl")], "pr_plot": plot,
               "decisions": decisions.source, "ece_test": ece, "test_scores": scores}
    results_path = ctx.path("results.json")
    write_json(results_path, payload, sort_keys=False, default=str)  # rows in table order
    return {"results": results_path, "plot": plot}


def _where(ctx) -> list:
    info = ctx.info["evaluate"]
    return [("metrics (JSON)", info["results"], ""), ("PR curves (ZSL, PNG)", info["plot"], "")]


def _report(ctx) -> list:
    with open(ctx.info["evaluate"]["results"]) as handle:
        res = json.load(handle)
    return ["", *summary.decisions_block(res, train.SFR_NET).splitlines()]


STAGE = Stage("evaluate", "evaluation: plain CLIP zero-shot vs SFR-Net (cctv test split)", run,
              params=lambda ctx: {"rows": list(train.workdirs(ctx))}, outputs=lambda ctx: [ctx.path("results.json")],
              report=_report, where=_where)
