"""ML-ZSL and ML-GZSL evaluation of a model state over a prepared split: every image exactly once.

Text features of each mode's classes are computed once per evaluation and passed to the jitted step;
all modes score a batch in one program. Padding images of the last batches are dropped by their mask.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import time

import jax
import numpy as np

from sfr_jax import parallel
from sfr_jax.data import pipeline
from sfr_jax.errors import ConfigError
from sfr_jax.eval import metrics as metrics_lib
from sfr_jax.infer import steps
from sfr_jax.text.classes import EVAL_MODES


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What an evaluation reads and how (the run config's eval section and its data split)."""

    split_dir: str
    global_batch: int
    max_batches: int  # -1: the whole split
    topk_zsl: tuple
    topk_gzsl: tuple
    image_size: int
    mean: tuple
    std: tuple
    device_prefetch: int

    @classmethod
    def from_config(cls, config) -> "EvalConfig":
        e, d = config.eval, config.data
        return cls(os.path.join(d.dir, d.eval_split), int(e.global_batch), int(e.max_batches),
                   tuple(int(k) for k in e.topk_zsl), tuple(int(k) for k in e.topk_gzsl), int(d.image_size),
                   tuple(d.mean), tuple(d.std), int(d.device_prefetch))


class Evaluator:
    """Compiled text-feature and eval steps for one model layout; `run(trainable, frozen)` -> results."""

    def __init__(self, parts, ec: EvalConfig, mesh, shardings):
        self.parts, self.ec, self.mesh = parts, ec, mesh
        cs = parts.class_set
        self.modes = {"zsl": tuple(cs.ids("zsl")), "gzsl": tuple(cs.ids("gzsl"))}
        self.modes = {name: ids for name, ids in self.modes.items() if ids}
        self.topk = {"zsl": ec.topk_zsl, "gzsl": ec.topk_gzsl}
        self.text_features = steps.make_text_features(parts, mesh, shardings)
        self.eval_step = steps.make_eval_step(parts, mesh, shardings, self.modes, ec.mean, ec.std)
        self.split_dir = ec.split_dir
        parallel.check_batch(ec.global_batch, mesh, "eval.global_batch")
        # Fails now, not after an epoch of training, when the split does not suit the processes.
        self.num_batches = pipeline.eval_steps(self.split_dir, ec.global_batch, jax.process_count())
        self.partial = 0 < ec.max_batches < self.num_batches
        if self.partial:
            self.num_batches = ec.max_batches

    def batches(self, with_filenames: bool = False):
        batches = pipeline.eval_batches(self.split_dir, global_batch=self.ec.global_batch,
                                        image_size=self.ec.image_size, process_index=jax.process_index(),
                                        process_count=jax.process_count(), with_filenames=with_filenames)
        return itertools.islice(batches, self.num_batches)

    def scores(self, trainable, frozen, batches=None, with_filenames: bool = False):
        """{mode: logits [N, c]} and labels [N, C] over the whole split (masked padding removed); with
        `with_filenames` also the images' file names [N] (one process only: names stay on the host)."""
        if with_filenames and jax.process_count() > 1:
            raise ConfigError("image file names (calibrate, eval --write-scores) need a single process")
        text = {name: self.text_features(trainable, frozen, ids) for name, ids in self.modes.items()}
        outs, labels, masks, names = [], [], [], []
        source = self.batches(with_filenames) if batches is None else batches

        def fields():
            for b in source:
                if with_filenames:
                    names.extend(n.decode("utf-8") for n in b["filename"])
                yield {k: b[k] for k in ("image", "labels", "mask")}

        for g in parallel.prefetch_to_device(fields(), self.mesh, self.ec.device_prefetch):
            outs.append(self.eval_step(trainable, frozen, g["image"], text))  # dispatched asynchronously
            labels.append(g["labels"])
            masks.append(g["mask"])
        mask = np.concatenate([parallel.to_host(m) for m in masks]).astype(bool)
        label = np.concatenate([parallel.to_host(x) for x in labels])[mask]
        logits = {name: np.concatenate([parallel.to_host(o[name]) for o in outs])[mask] for name in self.modes}
        if with_filenames:
            return logits, label, [n for n, keep in zip(names, mask) if keep]
        return logits, label

    def run(self, trainable, frozen, batches=None, decisions=None) -> dict:
        """Scores the split and returns the tables: {mode: {mAP, AP per class, top-k metrics[, sewer]}}."""
        start = time.time()
        logits, labels = self.scores(trainable, frozen, batches)
        results = self.tables(logits, labels, decisions)
        results["seconds"] = time.time() - start
        return results

    def tables(self, logits: dict, labels, decisions=None) -> dict:
        """The tables of scored logits. Sewer-ML's F2-CIW / F1-Normal (GZSL, with CIW weights) at the
        benchmark's sigmoid >= 0.5, and, given `decisions` for all classes (a calibration), at its thresholds."""
        cs = self.parts.class_set
        results = {"num_images": int(labels.shape[0]), "partial": self.partial}
        for name, ids in self.modes.items():
            y = labels[:, list(ids)]
            table = metrics_lib.evaluate(logits[name], y, self.topk[name])
            ap = metrics_lib.average_precision(logits[name], y)
            table["AP"] = {cs.codes[i]: (None if np.isnan(v) else float(v)) for i, v in zip(ids, ap)}
            if name == "gzsl" and cs.ciw is not None:
                ciw = cs.ciw[list(ids)]
                bench = metrics_lib.sewer_benchmark(logits[name], y, ciw)
                table["F2_CIW"], table["F1_normal"] = bench["F2_CIW"], bench["F1_normal"]
                if decisions is not None and decisions.calibrated:
                    fired = decisions.apply(logits[name])["fired"]
                    cal = metrics_lib.sewer_benchmark_fired(fired, y, ciw)
                    table["F2_CIW_calibrated"], table["F1_normal_calibrated"] = cal["F2_CIW"], cal["F1_normal"]
            results[name] = table
        return results


def flat_metrics(results: dict) -> dict:
    """'zsl/mAP'-style scalar metrics of evaluation results (for checkpoints and TensorBoard)."""
    out = {}
    for mode in EVAL_MODES:
        for key, value in (results.get(mode) or {}).items():
            if isinstance(value, (int, float)):
                out[f"{mode}/{key}"] = float(value)
    return out
