"""Stage group finetune: `sfr-jax train` from the trained SFR-Net on the reviewed frames mixed with the
original ones, `sfr-jax calibrate`, both videos inspected again, and the before/after table."""
from __future__ import annotations

import os

import numpy as np

from sfr_jax import config as config_lib
from sfr_jax.demo import scoring
from sfr_jax.demo.context import CONFIG_FILE
from sfr_jax.demo.engine import Stage, file_digest, run_verb
from sfr_jax.demo.stages import review, train
from sfr_jax.eval.metrics import average_precision

EPOCHS = 6  # over the reviewed + mixed frames (the first epoch warms up, as in every demo run)
# Fine-tuning at 0.3 x configs/demo.py's learning rates: at 1 x the unreviewed video's false alarms rose in all
# three seeds (the model learnt the reviewed video's look); at 0.1 x FO barely moved (README, "What to expect").
LR_SCALE = 0.3


def learning_rates() -> dict:
    """configs/demo.py's adapter and head learning rates times LR_SCALE, as --config overrides."""
    optim = config_lib.parse(["--config", CONFIG_FILE]).optim
    return {key: float(f"{value * LR_SCALE:.6g}") for key, value in
            (("optim.clip_lr", optim.clip_lr), ("optim.head_lr", optim.head_lr))}


def workdir(ctx) -> str:
    return ctx.path("review", "finetuned")


def run_finetune(ctx) -> dict:
    """Fine-tune (trainable parts from the SFR-Net, reviewed data, the reviewed class now seen); calibrate on
    the prepared validation split."""
    data = ctx.info["review"]["data"]
    extra = {"train.init_from": train.sfr_workdir(ctx), "data.dir": data,
             "data.class_set": os.path.join(data, "classes.yaml"), "data.eval_split": "val",
             "train.epochs": EPOCHS, **learning_rates()}  # reviewed data have no test split: evaluated on val
    run_verb(train.train_argv(ctx.out, workdir(ctx), ctx.seed, -1, [], ctx.image_size, ctx.quick, extra))
    run_verb(["calibrate", "--workdir", workdir(ctx), "--split", "val"])
    return {"workdir": workdir(ctx)}


def on_test_frames(model_dir: str, data_dir: str, code: str) -> dict:
    """`code`'s AP and the calibrated F1-Normal of a model on the demo's cctv test frames."""
    res, logits, labels, class_set, _ = scoring.evaluate_workdir(model_dir, "test", data_dir)
    column = list(class_set.codes).index(code)
    ap = average_precision(logits["gzsl"][:, [column]], labels[:, [column]])[0]
    return {"ap": None if np.isnan(ap) else float(ap), "f1_normal": res["gzsl"].get("F1_normal_calibrated"),
            "seen": bool(class_set.classes[column].seen)}


def run_after(ctx) -> dict:
    """Both videos inspected by the fine-tuned model; its figures and the test frames' beside the model's
    before the review."""
    before = ctx.info["review_before"]
    reports = {review.NAMES[0]: review.inspect_video(workdir(ctx), ctx.info["inspect"]["video"],
                                                      os.path.splitext(ctx.info["inspect"]["video"])[0] + ".csv",
                                                      ctx.path("review", "after")),
               review.NAMES[1]: review.inspect_video(workdir(ctx), before["video"], before["distance"],
                                                      ctx.path("review", "after"))}
    tests = {"before": on_test_frames(train.sfr_workdir(ctx), ctx.path("data"), review.REVIEWED_CLASS),
             "after": on_test_frames(workdir(ctx), ctx.path("data"), review.REVIEWED_CLASS)}
    return {"reports": reports, "figures": review.figures(reports), "test_frames": tests}


def table(before: dict, after: dict, tests: dict, code: str) -> str:
    """The before/after table: per video, planted found, false alarms per minute, F1-Normal and `code`'s AP
    over its frames; then `code`'s AP and F1-Normal on the cctv test frames."""
    names = list(before)
    pct = lambda v: "  n/a" if v is None else f"{100 * v:5.1f}"  # noqa: E731
    head = f"{'':<26}" + "".join(f"| {label:<25}" for label in ("reviewed: " + names[0], "unreviewed: " + names[1]))
    lines = [head, f"{'':<26}" + "| before  after            " * 2, "-" * len(head)]
    rows = (("planted defects found", lambda f: f"{f['found']}/{f['planted']}"),
            ("false alarms per minute", lambda f: f"{f['false_alarms_per_min']:.1f}"),
            ("F1-Normal (frames, %)", lambda f: pct(f["f1_normal"]).strip()),
            (f"{code} AP (frames, %)", lambda f: pct(f["ap"]).strip()))
    for label, cell in rows:
        lines.append(f"{label:<26}" + "".join(f"| {cell(before[n]):>6}  {cell(after[n]):>6}           " for n in names))
    lines.append(f"cctv test frames: {code} AP {pct(tests['before']['ap']).strip()} -> {pct(tests['after']['ap']).strip()}"
                 f" %, F1-Normal (calibrated) {pct(tests['before']['f1_normal']).strip()} -> "
                 f"{pct(tests['after']['f1_normal']).strip()} %")
    return "\n".join(lines)


def tiers_lines(figures: dict, when: str) -> list:
    """Events per tier and each tier's precision against the planted truth, both videos together."""
    out = []
    for tier in ("confident", "review"):
        events = sum(f["tiers"][tier]["events"] for f in figures.values())
        true = sum(f["tiers"][tier]["true"] for f in figures.values())
        out.append(f"{tier} {events} event(s)" + (f", precision {100 * true / events:.0f} %" if events else ""))
    return [f"  tiers {when}: " + "; ".join(out)]


def _report(ctx) -> list:
    info, before = ctx.info.get("finetune_after"), ctx.info.get("review_before")
    if not info or not before:
        return []
    decided = ", ".join(f"{n} {a}" for a, n in sorted(ctx.info["review"]["decisions"].items()))
    lines = ["", f"Review loop: {review.NAMES[0]} reviewed against its planted truth ({decided}), fine-tuned "
             f"{EPOCHS} epochs at {LR_SCALE:g}x the learning rates on its frames + {review.MIX_RATIO:g}x as many training "
             "frames; "
             f"{review.REVIEWED_CLASS} trains as seen from then on:"]
    lines += ["  " + line for line in table(before["figures"], info["figures"], info["test_frames"],
                                            review.REVIEWED_CLASS).splitlines()]
    lines += tiers_lines(before["figures"], "before") + tiers_lines(info["figures"], "after ")
    return lines


def stages(ctx) -> list:
    """Fine-tune and calibrate; inspect both videos again and measure."""
    return [Stage("finetune", "sfr-jax train from the SFR-Net on the reviewed frames, then calibrate", run_finetune,
                  params=lambda ctx: {"epochs": EPOCHS, "lr_scale": LR_SCALE, "config": file_digest(CONFIG_FILE),
                                      "quick": ctx.quick},
                  outputs=lambda ctx: [workdir(ctx)], group="finetune"),
            Stage("finetune_after", "both videos inspected again by the fine-tuned model", run_after,
                  outputs=lambda ctx: [ctx.path("review", "after")], group="finetune", report=_report,
                  where=lambda ctx: [("fine-tuned SFR-Net", workdir(ctx), "")])]
