"""ML-ZSL and ML-GZSL evaluation of a model state over a prepared split: every image exactly once.

Text features of each mode's classes are computed once per evaluation and passed to the jitted step;
all modes score a batch in one program. Padding images of the last batches are dropped by their mask.
"""
from __future__ import annotations

import itertools
import os
import time

import jax
import numpy as np

from sfr_jax import parallel
from sfr_jax.data import pipeline
from sfr_jax.eval import metrics as metrics_lib
from sfr_jax.infer import steps


class Evaluator:
    """Compiled text-feature and eval steps for one model layout; `run(trainable, frozen)` -> results."""

    def __init__(self, parts, config, mesh, shardings):
        self.parts, self.config, self.mesh = parts, config, mesh
        cs = parts.class_set
        self.modes = {"zsl": tuple(cs.ids("zsl")), "gzsl": tuple(cs.ids("gzsl"))}
        self.modes = {name: ids for name, ids in self.modes.items() if ids}
        self.topk = {"zsl": tuple(config.eval.topk_zsl), "gzsl": tuple(config.eval.topk_gzsl)}
        self.text_features = steps.make_text_features(parts, mesh, shardings)
        self.eval_step = steps.make_eval_step(parts, mesh, shardings, self.modes, config.data.mean, config.data.std)
        self.split_dir = os.path.join(config.data.dir, config.data.eval_split)
        parallel.check_batch(config.eval.global_batch, mesh, "eval.global_batch")
        # Fails now, not after an epoch of training, when the split does not suit the processes.
        self.num_batches = pipeline.eval_steps(self.split_dir, config.eval.global_batch, jax.process_count())
        self.partial = 0 < config.eval.max_batches < self.num_batches
        if self.partial:
            self.num_batches = config.eval.max_batches

    def batches(self):
        c = self.config
        batches = pipeline.eval_batches(self.split_dir, global_batch=c.eval.global_batch,
                                        image_size=c.data.image_size, process_index=jax.process_index(),
                                        process_count=jax.process_count())
        return itertools.islice(batches, self.num_batches)

    def scores(self, trainable, frozen, batches=None):
        """{mode: logits [N, c]} and labels [N, C] over the whole split (masked padding removed)."""
        text = {name: self.text_features(trainable, frozen, ids) for name, ids in self.modes.items()}
        outs, labels, masks = [], [], []
        source = self.batches() if batches is None else batches
        fields = ({k: b[k] for k in ("image", "labels", "mask")} for b in source)
        for g in parallel.prefetch_to_device(fields, self.mesh, self.config.data.device_prefetch):
            outs.append(self.eval_step(trainable, frozen, g["image"], text))  # dispatched asynchronously
            labels.append(g["labels"])
            masks.append(g["mask"])
        mask = np.concatenate([parallel.to_host(m) for m in masks]).astype(bool)
        label = np.concatenate([parallel.to_host(x) for x in labels])[mask]
        logits = {name: np.concatenate([parallel.to_host(o[name]) for o in outs])[mask] for name in self.modes}
        return logits, label

    def run(self, trainable, frozen, batches=None) -> dict:
        """Scores the split and returns the tables: {mode: {mAP, AP per class, top-k metrics[, sewer]}}."""
        start = time.time()
        logits, labels = self.scores(trainable, frozen, batches)
        cs = self.parts.class_set
        results = {"num_images": int(labels.shape[0]), "partial": self.partial}
        for name, ids in self.modes.items():
            y = labels[:, list(ids)]
            table = metrics_lib.evaluate(logits[name], y, self.topk[name])
            ap = metrics_lib.average_precision(logits[name], y)
            table["AP"] = {cs.codes[i]: (None if np.isnan(v) else float(v)) for i, v in zip(ids, ap)}
            if name == "gzsl" and cs.ciw is not None:
                bench = metrics_lib.sewer_benchmark(logits[name], y, cs.ciw[list(ids)])
                table["F2_CIW"], table["F1_normal"] = bench["F2_CIW"], bench["F1_normal"]
            results[name] = table
        results["seconds"] = time.time() - start
        return results


def flat_metrics(results: dict) -> dict:
    """'zsl/mAP'-style scalar metrics of evaluation results (for checkpoints and TensorBoard)."""
    out = {}
    for mode in ("zsl", "gzsl"):
        for key, value in (results.get(mode) or {}).items():
            if isinstance(value, (int, float)):
                out[f"{mode}/{key}"] = float(value)
    return out
