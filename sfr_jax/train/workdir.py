"""A training (or imported) workdir read back: its run config, its checkpoints, and the model of a step.

A workdir holds config.json (the run config), checkpoints/ (Orbax steps), eval/ (reports), train.log and
tensorboard/. Everything that reads a workdir (eval, calibrate, predict, export, the demo) goes through here.
"""
from __future__ import annotations

import os

import jax

from sfr_jax import config as config_lib
from sfr_jax.errors import MissingInput
from sfr_jax.eval import calibration_record
from sfr_jax.infer.model import LoadedModel
from sfr_jax.train import checkpoint as ckpt_lib
from sfr_jax.train.run import Run, restore_into, setup

CONFIG_FILE = "config.json"


def run_config(workdir: str):
    """The run config stored in a workdir; a clear error when the folder is not a workdir."""
    path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
    if not os.path.isfile(path):
        raise MissingInput(f"{path} not found: is {workdir} a training workdir (sfr-jax train / import)?")
    with open(path, encoding="utf-8") as handle:
        return config_lib.from_json(handle.read(), source=path)


def open_checkpoints(workdir: str, config, read_only: bool = True) -> ckpt_lib.Checkpoints:
    """The workdir's checkpoint manager with the run's keep policy."""
    return ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints, config.train.best_metric,
                                read_only=read_only)


def fit_batch_to_devices(config) -> None:
    """Loading a model does not train: let any device count hold it (training's batch may not divide it)."""
    with config.unlocked():
        config.train.global_batch = jax.device_count() * jax.process_count()
        config.loss.group_size = 0


def load_run(workdir: str, config=None, step: int | None = None, best: bool = False) -> tuple[Run, dict]:
    """(the run restored at a saved step, its checkpoint meta): the step given, the best one, or the newest
    readable one. `config` defaults to the workdir's own (pass a modified copy to evaluate elsewhere)."""
    workdir = os.path.abspath(workdir)
    config = config if config is not None else run_config(workdir)
    manager = open_checkpoints(workdir, config)
    try:
        wanted = manager.resolve_step(step, best)
        # an imported workdir (sfr-jax import) leaves steps_per_epoch open; loading does not need it
        spe = manager.steps_per_epoch() or 1
        run = setup(config, workdir, restore=False, spe=spe)
        meta = restore_into(run, wanted if (best or step is not None) else None, manager=manager)
    finally:
        manager.close()
    return run, meta


def load_model(workdir: str, step: int | None = None, best: bool = False) -> LoadedModel:
    """The model of a saved step (default: the newest readable one; `best`: by train.best_metric)."""
    workdir = os.path.abspath(workdir)
    config = run_config(workdir)
    fit_batch_to_devices(config)
    run, meta = load_run(workdir, config, step, best)
    model = run.parts.merge(run.trainable, run.frozen)
    model.eval()
    provenance = {"workdir": workdir, "step": run.step, "metrics": meta.get("metrics"), "run": config.name}
    return LoadedModel(model, run.parts.class_set, run.parts.tokenizer, int(config.data.image_size),
                       tuple(config.data.mean), tuple(config.data.std), provenance,
                       calibration(workdir, run.step, run.parts.class_set))


def calibration(workdir: str, step: int, class_set) -> dict | None:
    """The calibration record of a step (`sfr-jax calibrate`), checked against the step and class set, or
    None when the step has none."""
    path = calibration_record.record_path(workdir, step)
    if not os.path.isfile(path):
        return None
    record = calibration_record.read_record(path)
    calibration_record.check_record(record, step=step, class_set=class_set, origin=path)
    return record
