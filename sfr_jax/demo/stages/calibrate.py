"""Stage calibrate: `sfr-jax calibrate` of the trained SFR-Net on the validation frames (thresholds, Platt
probabilities); the validation logits are saved for benchmarks/calibration_rules.py."""
from __future__ import annotations

from sfr_jax.demo import scoring
from sfr_jax.demo.engine import Stage, run_verb
from sfr_jax.demo.stages import train
from sfr_jax.eval import calibration


def run(ctx) -> dict:
    workdir = train.sfr_workdir(ctx)
    run_verb(["calibrate", "--workdir", workdir, "--split", "val"])
    _, logits, labels, class_set, _ = scoring.evaluate_workdir(workdir, "val")
    return {"val_scores": scoring.save_scores(ctx.path("scores_val.npz"), logits, labels, class_set)}


def stages(ctx) -> list:
    """One stage following every training row (their keys chain into its key)."""
    return [Stage("calibrate", "sfr-jax calibrate: decision thresholds on the validation frames", run,
                  params=lambda ctx: {"objective": calibration.DEFAULT_OBJECTIVE, "rule": calibration.DEFAULT_RULE},
                  after=tuple(s.name for s in train.stages(ctx)))]
