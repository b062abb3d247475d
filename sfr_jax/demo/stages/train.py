"""Stage group train: `sfr-jax train --config configs/demo.py` of SFR-Net on the seen classes (evaluated
every epoch), and the ablation rows of the paper's Table 3 (variants of configs/demo.py). Each row depends
on the data stages only."""
from __future__ import annotations

import os

from sfr_jax.demo import pretrain as dp
from sfr_jax.demo.context import CONFIG_FILE, DEFAULT_IMAGE_SIZE, DEFAULT_OUT, DEFAULT_SEED, SIZES
from sfr_jax.demo.engine import Stage, file_digest, run_verb, show
from sfr_jax.fileio import write_text
from sfr_jax.text.classes import load_class_set

SFR_NET = "SFR-Net (RS+MEF+GR)"
ABLATIONS = {"+RS": "rs", "+RS +MEF": "rs_mef"}  # Table 3's rows: label -> variant of configs/demo.py


def rows(ctx) -> dict:
    """{table label: (stage name, workdir name, config variants)} of the models trained, in table order."""
    variants = {**(ABLATIONS if ctx.ablation else {}), SFR_NET: ""}
    out = {}
    for label, variant in variants.items():
        name = "sfr" if not variant else "ablation_" + label.replace("+", "").replace(" ", "_").lower().strip("_")
        out[label] = ("train" if not variant else f"train_{name}", name, [variant] if variant else [])
    return out


def workdirs(ctx) -> dict:
    """{table label: workdir} of the trained models, in table order (SFR-Net last)."""
    return {label: ctx.path(name) for label, (_, name, _) in rows(ctx).items()}


def sfr_workdir(ctx) -> str:
    """The workdir of the full SFR-Net (the model calibrated, exported and run on the video)."""
    return workdirs(ctx)[SFR_NET]


def train_argv(out: str, workdir: str, seed: int, train_steps: int, variants: list, image_size: int,
               quick: bool, extra: dict | None = None) -> list:
    """`sfr-jax train --config configs/demo.py[:variants]` plus only what differs from that file: the paths
    of another --out, another seed or image size, another step count, then the `extra` overrides."""
    overrides = {}
    if os.path.abspath(out) != os.path.abspath(DEFAULT_OUT):
        overrides.update({"clip_dir": os.path.join(out, "clip"), "data.dir": os.path.join(out, "data"),
                          "data.descriptions": os.path.join(out, "prompts.txt")})
    if seed != DEFAULT_SEED:
        overrides["seed"] = seed
    if image_size != DEFAULT_IMAGE_SIZE:
        overrides["data.image_size"] = image_size
    if train_steps > 0 and not (quick and train_steps == SIZES["quick"]["train_steps"]):
        overrides.update({"train.max_steps": train_steps, "train.log_every": 2})
    overrides.update(extra or {})
    config = CONFIG_FILE + (":" + ",".join((["quick"] if quick else []) + variants) if quick or variants else "")
    return (["train", "--config", config, "--workdir", workdir]
            + [f"--config.{k}={v}" for k, v in overrides.items()])


def write_prompts(out: str) -> str:
    """The class prompts of the demo (one line per class): the caption template with the class phrase."""
    return write_text(os.path.join(out, "prompts.txt"),
                      "\n".join(dp.class_prompts(load_class_set("sewerml").phrases)) + "\n")


def _run(ctx, name: str, variants: list) -> dict:
    write_prompts(ctx.out)
    workdir = ctx.path(name)
    run_verb(train_argv(ctx.out, workdir, ctx.seed, ctx.size["train_steps"], variants, ctx.image_size, ctx.quick))
    return {"workdir": workdir}


def _where(ctx) -> list:
    workdir = sfr_workdir(ctx)
    return [("SFR-Net checkpoints", os.path.join(workdir, "checkpoints"), ""),
            ("per-epoch evaluations", os.path.join(workdir, "eval"), ""),
            ("TensorBoard logs", os.path.join(workdir, "tensorboard"), f"  (tensorboard --logdir {show(workdir)})")]


def stages(ctx) -> list:
    """One stage per trained row, all in the group 'train'; the last (SFR-Net) carries the summary rows."""
    out = []
    for label, (stage_name, name, variants) in rows(ctx).items():
        title = "sfr-jax train: SFR-Net on the seen classes" + (f" ({label})" if variants else "")
        params = lambda ctx, variants=variants: {  # noqa: E731
            "steps": ctx.size["train_steps"], "seed": ctx.seed, "variants": variants, "quick": ctx.quick,
            "image_size": ctx.image_size, "config": file_digest(CONFIG_FILE)}
        out.append(Stage(stage_name, title, lambda ctx, name=name, variants=variants: _run(ctx, name, variants),
                         params=params, outputs=lambda ctx, name=name: [ctx.path(name)], after=("prepare",),
                         group="train", where=None if variants else _where))
    return out
