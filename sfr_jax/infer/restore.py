"""A saved step of a workdir opened for scoring: the model built from the run's config, its trainable state
and GR adjacency restored on a mesh. Nothing of training: no optimiser is made, no optimiser state is read
and no batch setting is rewritten (predict, inspect, eval, calibrate and export open steps here).
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from sfr_jax import parallel
from sfr_jax.checkpoints import Checkpoints, abstract
from sfr_jax.infer import model as model_lib
from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")


@dataclasses.dataclass
class Restored:
    """A step's model laid out on a mesh: what an evaluator or a scorer needs, and where it came from."""

    workdir: Workdir
    config: object
    mesh: object
    parts: model_lib.ModelParts
    shardings: dict  # {"trainable": ..., "frozen": ...}
    trainable: dict
    frozen: object
    step: int
    meta: dict

    def model(self):
        """The SFR-Net of this step in eval mode (dropout off), sharing the restored arrays."""
        return self.parts.merge(self.trainable, self.frozen)


def param_shardings(mesh, trainable, frozen, min_size: int = parallel.MIN_SHARDED_SIZE) -> dict:
    """Replicated parameters, or tensors of `min_size` scalars or more split over the 'model' axis when
    mesh.model > 1 (parallel.param_sharding)."""
    return {"trainable": parallel.param_sharding(mesh, trainable, min_size),
            "frozen": parallel.param_sharding(mesh, frozen, min_size)}


def scoring_tree(trainable, frozen) -> dict:
    """The entries of a checkpoint that scoring reads (training saves these and more: see train.run)."""
    tree = {"trainable": trainable}
    adjacency = model_lib.get_adjacency(frozen)
    if adjacency is not None:
        tree["adjacency"] = adjacency
    return tree


def open_checkpoints(workdir: Workdir, config, read_only: bool = True) -> Checkpoints:
    """The workdir's checkpoints with the run's keep policy."""
    return Checkpoints(workdir, config.train.keep_checkpoints, config.train.best_metric, read_only=read_only)


def build(config, workdir: str | Workdir = "") -> Restored:
    """The model of a run config at its initialisation (no checkpoint read), laid out on a mesh: e.g. plain
    CLIP zero-shot (RS, MEF and GR off) scored by the same evaluator as a trained step."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir or ".")
    mesh = parallel.make_mesh(config.mesh.data, config.mesh.model)
    parts = model_lib.build_parts(model_lib.ModelSpec.from_config(config))
    shardings = param_shardings(mesh, parts.trainable, parts.frozen)
    trainable = parallel.place(parts.trainable, shardings["trainable"])
    frozen = parallel.place(parts.frozen, shardings["frozen"])
    return Restored(workdir, config, mesh, parts, shardings, trainable, frozen, 0, {})


def restore_step(workdir: str | Workdir, step: int | None = None, best: bool = False, config=None) -> Restored:
    """The step given, the best one (by train.best_metric) or the newest readable one. `config` defaults to
    the workdir's own (pass a modified copy to evaluate on other data)."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    config = config if config is not None else workdir.read_config()
    opened = build(config, workdir)
    target = scoring_tree(opened.trainable, opened.frozen)
    rep = parallel.replicated(opened.mesh)
    target_shardings = {"trainable": opened.shardings["trainable"],
                        **({"adjacency": rep} if "adjacency" in target else {})}
    manager = open_checkpoints(workdir, config)
    try:
        wanted = manager.resolve_step(step, best)
        # the newest step falls back to the one before when unreadable; a named step does not
        tree, meta, got = manager.restore(abstract(target, target_shardings),
                                          wanted if (best or step is not None) else None, partial=True)
    finally:
        manager.close()
    model_lib.set_adjacency(opened.frozen, tree.get("adjacency"))  # the adjacency of training, not recomputed
    log.info("opened %s step %d", manager.directory, got)
    return dataclasses.replace(opened, trainable=tree["trainable"], step=int(meta["step"]), meta=meta)


def recompute_adjacency(restored: Restored) -> None:
    """GR's adjacency from the CURRENT (trained) text encoder, as the reference does when it evaluates a
    saved model (SPEC §4); training keeps the start-up adjacency."""
    model = restored.model()
    value = parallel.place(np.asarray(model.compute_adjacency(restored.parts.phrase_tokens)),
                           parallel.replicated(restored.mesh))
    model_lib.set_adjacency(restored.frozen, value)


def loaded_model(restored: Restored, calibration: dict | None = None) -> model_lib.LoadedModel:
    """A restored step as a ready-to-run LoadedModel (with its calibration record, when the caller read one)."""
    config = restored.config
    model = restored.model()
    model.eval()
    provenance = {"workdir": restored.workdir.path, "step": restored.step, "metrics": restored.meta.get("metrics"),
                  "run": config.name}
    return model_lib.LoadedModel(model, restored.parts.class_set, restored.parts.tokenizer,
                                 int(config.data.image_size), tuple(config.data.mean), tuple(config.data.std),
                                 provenance, calibration)
