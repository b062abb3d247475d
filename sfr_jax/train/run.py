"""A run's state between steps: mesh, split model, optimiser, shardings, and its checkpoints.

Data position: global step s (steps done) is batch s % steps_per_epoch of epoch s // steps_per_epoch. The
checkpoint tree holds the trainable and optimiser state, the RNG key and the GR adjacency; its meta the
step, the data position and the run config, so a resumed run continues bit-identically.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time

import jax
import numpy as np

from sfr_jax import checkpoints as ckpt_lib
from sfr_jax import config as config_lib
from sfr_jax import parallel
from sfr_jax.data import pipeline
from sfr_jax.errors import CheckpointError, ConfigError
from sfr_jax.infer import model as model_lib
from sfr_jax.infer.restore import open_checkpoints, param_shardings, scoring_tree
from sfr_jax.train import optim
from sfr_jax.train.configs import RunConfigs, typed
from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")


@dataclasses.dataclass
class Layout:
    """A run config laid out on a mesh: model parts, optimiser, shardings and the state (real or abstract)."""

    config: object
    configs: RunConfigs  # the typed configs of `config` (train.configs.typed)
    mesh: object
    parts: model_lib.ModelParts
    tx: object
    shardings: dict
    trainable: object
    opt_state: object
    frozen: object


@dataclasses.dataclass
class Run(Layout):
    """Everything a training or evaluation run holds between steps."""

    workdir: str
    key: object
    steps_per_epoch: int
    total_steps: int
    step: int = 0


def split_dir(config, split: str) -> str:
    """The prepared folder of one split of the run's data."""
    return os.path.join(config.data.dir, split)


def input_readers(config) -> tuple[int, range]:
    """(number of virtual input readers, the ones this process runs): see config.data.input_processes."""
    readers = config.data.input_processes or jax.process_count()
    if readers % jax.process_count():
        raise ConfigError(f"config value data.input_processes={readers} must be a multiple of the "
                          f"{jax.process_count()} processes")
    per = readers // jax.process_count()
    return readers, range(jax.process_index() * per, (jax.process_index() + 1) * per)


def steps_per_epoch(config) -> int:
    """Training steps per epoch of the run's training split at its global batch."""
    readers, _ = input_readers(config)
    return pipeline.steps_per_epoch(split_dir(config, config.data.train_split), config.train.global_batch, readers)


def state_shardings(mesh, trainable, opt_state, frozen, min_size: int = parallel.MIN_SHARDED_SIZE) -> dict:
    """param_shardings of the model, and the optimiser state laid out like the parameters it follows."""
    return {**param_shardings(mesh, trainable, frozen, min_size),
            "opt_state": parallel.param_sharding(mesh, opt_state, min_size)}


def total_steps(config, spe: int) -> int:
    """Steps of the whole run: train.epochs x steps per epoch, or train.max_steps when smaller."""
    total = config.train.epochs * spe
    return min(total, config.train.max_steps) if config.train.max_steps > 0 else total


def setup(config, workdir: str, *, restore: bool = True, step: int | None = None, spe: int | None = None) -> Run:
    """Mesh, model, optimiser, shardings; the state from the workdir's newest readable checkpoint if any."""
    configs = typed(config)
    mesh = parallel.make_mesh(config.mesh.data, config.mesh.model)
    parallel.check_batch(config.train.global_batch, mesh)
    parts = model_lib.build_parts(configs.model)
    spe = spe or steps_per_epoch(config)
    tx = optim.make_optimizer(configs.optim, spe)
    opt_shapes = jax.eval_shape(tx.init, parts.trainable)
    shardings = state_shardings(mesh, parts.trainable, opt_shapes, parts.frozen)
    trainable = parallel.place(parts.trainable, shardings["trainable"])
    opt_state = jax.jit(tx.init, out_shardings=shardings["opt_state"])(trainable)
    frozen = parallel.place(parts.frozen, shardings["frozen"])
    run = Run(config, configs, mesh, parts, tx, shardings, trainable, opt_state, frozen, workdir=workdir,
              key=jax.random.key(config.seed), steps_per_epoch=spe, total_steps=total_steps(config, spe))
    if restore:
        restore_into(run, step)
    return run


def checkpoint_tree(run: Run) -> dict:
    """The tree a checkpoint of `run` holds: what scoring reads (infer.restore.scoring_tree), the optimiser
    state and the RNG key (host numpy, saved once by process 0)."""
    return {**scoring_tree(run.trainable, run.frozen), "opt_state": run.opt_state,
            "rng": np.asarray(jax.random.key_data(run.key))}


def checkpoint_meta(run: Run) -> dict:
    """The JSON meta of a checkpoint of `run`: step, data position, run config, where it ran."""
    return {"step": run.step, "epoch": run.step // run.steps_per_epoch,
            "step_in_epoch": run.step % run.steps_per_epoch, "steps_per_epoch": run.steps_per_epoch,
            "total_steps": run.total_steps, "seed": run.config.seed, "clip_dir": run.config.clip_dir,
            "config": config_lib.to_json(run.config), "time": time.time(),
            "process_count": jax.process_count(), "device_count": jax.device_count()}


def checkpoints(run: Run, read_only: bool = False) -> ckpt_lib.Checkpoints:
    """The checkpoint manager of the run's workdir, with the run's keep policy."""
    return open_checkpoints(Workdir(run.workdir), run.config, read_only=read_only)


def restore_into(run: Run, step: int | None = None, manager: ckpt_lib.Checkpoints | None = None) -> dict | None:
    """Load the newest readable (or the given) checkpoint of the workdir into `run`; None when there is none."""
    own = manager is None
    manager = manager or checkpoints(run, read_only=True)
    try:
        if step is None and manager.latest_step() is None:
            return None
        target = checkpoint_tree(run)
        rep = parallel.replicated(run.mesh)
        shardings = {"trainable": run.shardings["trainable"], "opt_state": run.shardings["opt_state"], "rng": rep}
        if "adjacency" in target:
            shardings["adjacency"] = rep
        tree, meta, got = manager.restore(ckpt_lib.abstract(target, shardings), step)
    finally:
        if own:
            manager.close()
    if meta.get("steps_per_epoch") not in (None, run.steps_per_epoch):
        raise CheckpointError(
            f"checkpoint step {got} in {run.workdir} was made with {meta['steps_per_epoch']} steps per epoch, "
            f"this run has {run.steps_per_epoch}: the global batch or the data changed; use a new --workdir")
    run.trainable, run.opt_state = tree["trainable"], tree["opt_state"]
    run.key = jax.random.wrap_key_data(np.asarray(tree["rng"]))
    if "adjacency" in tree:
        model_lib.set_adjacency(run.frozen, tree["adjacency"])  # the adjacency of training, not recomputed
    run.step = int(meta["step"])
    log.info("resumed from %s step %d (epoch %d, step %d in epoch)", manager.directory, run.step,
             run.step // run.steps_per_epoch, run.step % run.steps_per_epoch)
    return meta

