"""`sfr-jax train --dry-run`: compile the real train step for the run's mesh without training, and print
the per-device batch, memory and FLOPs. Needs no data (one step per epoch is assumed without it)."""
from __future__ import annotations

import logging
import time

import jax
import numpy as np

from sfr_jax import parallel
from sfr_jax.errors import UserError
from sfr_jax.infer import model as model_lib
from sfr_jax.train import steps
from sfr_jax.train.flops import function_flops
from sfr_jax.train.run import setup, steps_per_epoch

log = logging.getLogger("sfr_jax")


def dry_run(config) -> str:
    """Compile one train step for the config's mesh; returns (and prints on process 0) the report."""
    try:
        spe = steps_per_epoch(config)
    except UserError as error:  # compiling a step needs no data
        log.warning("no steps per epoch from the data (%s); the dry run assumes 1", error)
        spe = 1
    run = setup(config, "", restore=False, spe=spe)
    train_step = steps.make_train_step(run.parts, run.tx, config, run.mesh, run.shardings)
    per_device = parallel.check_batch(config.train.global_batch, run.mesh)
    local = config.train.global_batch // jax.process_count()
    size = config.data.image_size
    batch = {"image": np.zeros((local, size, size, 3), np.uint8),
             "labels": np.zeros((local, run.parts.class_set.num_classes), np.float32)}
    g = parallel.host_to_global(batch, run.mesh)
    args = (run.trainable, run.opt_state, run.frozen, g, np.int32(0), run.key)
    start = time.time()
    compiled = train_step.lower(*args).compile()
    text = (f"dry run of {config.name}: mesh {dict(run.mesh.shape)}, {jax.process_count()} process(es)\n"
            f"compile time: {time.time() - start:.1f}s\n"
            f"trainable parameters: {model_lib.count(run.trainable)}\n"
            + steps.dry_run_report(compiled, per_device, config.train.global_batch,
                                   function_flops(train_step, *args)))
    if jax.process_index() == 0:
        print(text, flush=True)
    return text
