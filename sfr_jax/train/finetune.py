"""Fine-tuning (issue 21): a new run starts from another trained workdir's parameters instead of the
initialisation. Only the trainable parts come over (adapters, MEF head, GCN); the CLIP stays frozen, as in
every run; the optimiser, step and data position start afresh, so the schedule is the new config's."""
from __future__ import annotations

import logging
import os

import jax

from sfr_jax import parallel
from sfr_jax.errors import CheckpointError, ConfigError, MissingInput
from sfr_jax.infer import restore
from sfr_jax.train.run import Run
from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")


def start_from(run: Run, source: str) -> int:
    """Replace `run`'s trainable parameters with those of `source`'s newest readable step; returns that
    step. ConfigError naming the first parameter whose shape differs (another model size)."""
    source = os.path.abspath(source)
    if not Workdir(source).has_config():
        raise MissingInput(f"config value train.init_from={source!r}: not a trained workdir (no config.json); "
                           "give the workdir of `sfr-jax train` (an exported .pth is not supported yet)")
    try:
        other = restore.restore_step(source)  # the scoring restore: trainable state only, no optimiser
    except CheckpointError as error:
        raise MissingInput(f"config value train.init_from={source!r}: no readable checkpoint ({error})") from None
    ours, theirs = jax.tree.structure(run.trainable), jax.tree.structure(other.trainable)
    if ours != theirs:
        raise ConfigError(f"config value train.init_from={source!r}: its trainable parameters are laid out "
                          "differently (another model.* configuration); fine-tune with the same model settings")
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(run.trainable), jax.tree.leaves(other.trainable)):
        if a.shape != b.shape:
            raise ConfigError(f"config value train.init_from={source!r}: parameter "
                              f"{jax.tree_util.keystr(path)} is {tuple(b.shape)} there, {tuple(a.shape)} here")
    run.trainable = parallel.place(jax.tree.map(lambda x: jax.device_get(x), other.trainable),
                                   run.shardings["trainable"])
    log.info("fine-tuning: trainable parameters from %s step %d", source, other.step)
    return int(other.step)
