"""Stage export: `sfr-jax export` of the trained SFR-Net to PyTorch, and `sfr-jax predict` of a few test
frames with that .pth: the model's own classes, and the classes of a user-style file never trained on."""
from __future__ import annotations

import csv
import os

from sfr_jax.data.synthetic import CODES
from sfr_jax.demo.engine import Stage, run_verb, show
from sfr_jax.demo.stages import train
from sfr_jax.fileio import write_text

USER_CLASSES = """\
# Your own defect classes, scored zero-shot: code, phrase (for the class graph), description (the prompt).
# SFR-Net never trained on any of them; `sfr-jax predict --classes this_file.yaml` scores them.
name: my_inspection_classes
classes:
  - code: HOLE
    phrase: Drilled connection
    description: a photo of a sewer pipe with drilled connection.
    seen: false
  - code: SEAL
    phrase: Intruding sealing material
    description: a photo of a sewer pipe with intruding sealing material.
    seen: false
  - code: BLOCK
    phrase: Obstacle
    description: a photo of a sewer pipe with obstacle.
    seen: false
  - code: ROOTS
    phrase: Roots
    description: a photo of a sewer pipe with roots.
    seen: false
"""
PICKED_CODES = ("PB", "IS", "FO", "RO")  # one test frame showing each (the user's classes' look-alikes first)


def run(ctx) -> dict:
    """Export the trained SFR-Net to PyTorch and score a few test frames, also with user-defined classes."""
    export_dir = ctx.path("export")
    os.makedirs(export_dir, exist_ok=True)
    pth = os.path.join(export_dir, "sfr_demo.pth")
    run_verb(["export", "--workdir", train.sfr_workdir(ctx), "--to", pth, "--overwrite"])
    classes = write_text(ctx.path("my_classes.yaml"), USER_CLASSES)
    raw = ctx.path("raw", "cctv")
    with open(os.path.join(raw, "SewerML_Val.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    picks = []
    for code in PICKED_CODES:
        for row in rows:
            if row[code] == "1" and row["Filename"] not in picks:
                picks.append(row["Filename"])
                break
    images = [os.path.join(raw, "images", name) for name in picks]
    predictions = os.path.join(export_dir, "predictions.txt")
    run_verb(["predict", "--checkpoint", pth, *images, "--top-k", "3", "--out", predictions])
    user_predictions = os.path.join(export_dir, "predictions_my_classes.txt")
    run_verb(["predict", "--checkpoint", pth, *images, "--classes", classes, "--out", user_predictions])
    truth = {row["Filename"]: [c for c in CODES if row.get(c) == "1"] for row in rows}
    return {"pth": pth, "sidecar": os.path.splitext(pth)[0] + ".json", "classes": classes,
            "predictions": predictions, "user_predictions": user_predictions, "images": images,
            "truth": {os.path.basename(p): truth[os.path.basename(p)] for p in images}}


def _report(ctx) -> list:
    exp = ctx.info["export"]
    lines = ["", "Prediction with the exported PyTorch model and the classes of " + show(exp["classes"])
             + " (never trained on):"]
    with open(exp["user_predictions"]) as handle:
        lines += ["  " + line for line in handle.read().rstrip().splitlines()]
    lines += ["", "The same frames, the model's own classes (top 3 each), calibrated decisions:"]
    with open(exp["predictions"]) as handle:
        lines += ["  " + line for line in handle.read().rstrip().splitlines()]
    lines.append("  true labels: " + "; ".join(f"{k}: {' '.join(v) or 'normal'}" for k, v in exp["truth"].items()))
    return lines


def _where(ctx) -> list:
    exp = ctx.info["export"]
    return [("PyTorch export", exp["pth"], "  (+ .json sidecar)"), ("predictions", exp["predictions"], "")]


STAGE = Stage("export", "sfr-jax export (PyTorch) and sfr-jax predict (your classes)", run,
              outputs=lambda ctx: [ctx.path("export")], report=_report, where=_where)
