"""Scoring a trained workdir (or plain CLIP) over a split for the demo's tables, with the library's
Evaluator: one scoring pass, tabulated from those logits."""
from __future__ import annotations

import numpy as np

from sfr_jax.eval.decisions import Decisions
from sfr_jax.eval.evaluator import EvalConfig, Evaluator
from sfr_jax.fileio import atomic_path
from sfr_jax.infer import restore
from sfr_jax.workdir import Workdir


def _tables(config, run, decisions=None):
    """(results, logits, labels) of one evaluation of `run` (an infer.restore.Restored), scored once and
    tabulated from those logits."""
    evaluator = Evaluator(run.parts, EvalConfig.from_config(config), run.mesh, run.shardings)
    logits, labels = evaluator.scores(run.trainable, run.frozen)
    return evaluator.tables(logits, labels, decisions), logits, labels


def evaluate_workdir(workdir: str, split: str | None = None, data_dir: str | None = None):
    """(results, logits, labels, class set, decisions) of the newest checkpoint of a training workdir over
    the test split (or `split`) of its data (or of `data_dir`: a fine-tuned model on the original test
    frames); decisions from the step's calibration when it has one."""
    config = Workdir(workdir).read_config()
    with config.unlocked():
        config.data.eval_split = split or config.data.eval_split
        config.data.dir = data_dir or config.data.dir
    run = restore.restore_step(workdir, config=config)
    decisions = Decisions.for_step(workdir, run.step, run.parts.class_set)
    return (*_tables(config, run, decisions), run.parts.class_set, decisions)


def evaluate_plain_clip(config, workdir: str):
    """Plain CLIP zero-shot: the same evaluator on SFR-Net with RS, MEF and GR switched off, i.e. the cosine
    of the global image feature and each class prompt's text feature."""
    with config.unlocked():
        config.model.rs = False
        config.model.use_local = False
        config.model.use_gr = False
    return _tables(config, restore.build(config, workdir))


def save_scores(path: str, logits, labels, class_set) -> str:
    """GZSL logits and labels of a split for benchmarks/calibration_rules.py."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, logits=logits["gzsl"], labels=labels, seen_ids=np.asarray(class_set.seen_ids),
                     unseen_ids=np.asarray(class_set.unseen_ids), codes=np.asarray(class_set.codes),
                     ciw=class_set.ciw)
    return path
