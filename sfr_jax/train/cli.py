"""`sfr-jax train` and `sfr-jax eval`.

    sfr-jax train --config configs/sewerml.py[:runlocal,bf16] --workdir DIR [--config.optim.head_lr=2e-3]
                  [--dry-run] [--coordinator HOST:PORT --num-processes N --process-id I]
    sfr-jax eval  --workdir DIR [--step N | --best] [--recompute-adjacency] [--data-dir D] [--split S]
                  [--batch B] [--name NAME]

`train` resumes automatically from the newest readable checkpoint in DIR. `eval` re-evaluates any saved
step with the run's saved config and writes eval/NAME.{json,md} in DIR.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

log = logging.getLogger("sfr_jax")

_ALIASES = {"--dry-run": "--dry_run", "--num-processes": "--num_processes", "--process-id": "--process_id",
            "--no-dry-run": "--nodry_run"}


def _normalise(argv):
    out = []
    for arg in argv:
        head, eq, tail = arg.partition("=")
        out.append(_ALIASES.get(head, head) + eq + tail)
    return out


def _train_flags(fv):
    from absl import flags

    flags.DEFINE_string("workdir", None, "run folder: checkpoints, logs, evaluation tables", flag_values=fv)
    flags.DEFINE_bool("dry_run", False, "compile one step, print batch/memory/FLOPs, do not train", flag_values=fv)
    flags.DEFINE_string("coordinator", "", "multi-process: HOST:PORT of process 0", flag_values=fv)
    flags.DEFINE_integer("num_processes", 0, "multi-process: number of processes (0: from config)", flag_values=fv)
    flags.DEFINE_integer("process_id", -1, "multi-process: this process's index (-1: from config)", flag_values=fv)


def _start_distributed(config):
    from sfr_jax import parallel

    d = config.distributed
    parallel.initialize(d.coordinator, d.num_processes, d.process_id, d.cpu_collectives)


def train_main(argv) -> int:
    """Parse flags and config, start the multi-process runtime if configured, train (or dry-run)."""
    from sfr_jax.train import config as config_lib

    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(__doc__)
        return 0
    try:
        config, fv = config_lib.parse(_normalise(argv), extra=_train_flags)
        if not fv.workdir and not fv.dry_run:
            raise config_lib.ConfigError("--workdir DIR is required")
        with config.unlocked():
            if fv.coordinator:
                config.distributed.coordinator = fv.coordinator
            if fv.num_processes:
                config.distributed.num_processes = fv.num_processes
            if fv.process_id >= 0:
                config.distributed.process_id = fv.process_id
        config_lib.resolve_paths(config, os.getcwd())
    except config_lib.ConfigError as error:
        print(f"sfr-jax train: {error}", file=sys.stderr)
        return 2
    _start_distributed(config)
    from sfr_jax.train import loop

    try:
        result = loop.train(config, fv.workdir, dry_run=fv.dry_run)
    except (ValueError, FileNotFoundError) as error:
        # Setup errors a user can fix (paths, batch vs devices, class sets): one clear line.
        log.error("%s", error)
        print(f"sfr-jax train: {error}", file=sys.stderr)
        return 2
    except loop.NonFiniteLoss as error:
        print(f"sfr-jax train: {error}", file=sys.stderr)
        return 1
    if result.status == "preempted":
        return 0  # checkpoint saved; the scheduler may requeue the same command
    return 0


def eval_main(argv) -> int:
    """Re-evaluate a saved step of a run with its saved config."""
    parser = argparse.ArgumentParser(prog="sfr-jax eval", description="ML-ZSL / ML-GZSL tables of a saved step")
    parser.add_argument("--workdir", required=True)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, default=None, help="saved step (default: the newest readable one)")
    which.add_argument("--best", action="store_true", help="the best step by train.best_metric")
    parser.add_argument("--recompute-adjacency", action="store_true",
                        help="recompute GR's adjacency with the trained text encoder (the reference's evaluation)")
    parser.add_argument("--data-dir", default=None, help="prepared data folder (default: the run's)")
    parser.add_argument("--split", default=None, help="split sub-folder (default: the run's eval split)")
    parser.add_argument("--batch", type=int, default=None, help="global evaluation batch")
    parser.add_argument("--name", default=None, help="report name under WORKDIR/eval (default: eval_step_N)")
    parser.add_argument("--coordinator", default="")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    args = parser.parse_args(argv)

    from sfr_jax.train import config as config_lib

    workdir = os.path.abspath(args.workdir)
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        print(f"sfr-jax eval: {config_path} not found: is {workdir} a training workdir?", file=sys.stderr)
        return 2
    with open(config_path) as f:
        config = config_lib.from_json(f.read())
    with config.unlocked():
        if args.data_dir:
            config.data.dir = os.path.abspath(args.data_dir)
        if args.split:
            config.data.eval_split = args.split
        if args.batch:
            config.eval.global_batch = args.batch
        if args.recompute_adjacency:
            config.model.recompute_adjacency_at_eval = True
        config.distributed.coordinator = args.coordinator
        config.distributed.num_processes = args.num_processes
        config.distributed.process_id = args.process_id
    _start_distributed(config)

    from sfr_jax.eval import report
    from sfr_jax.eval.evaluator import Evaluator
    from sfr_jax.train import checkpoint as ckpt_lib
    from sfr_jax.train import logging as run_log
    from sfr_jax.train import loop

    run_log.setup(None)
    try:
        manager = ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints, config.train.best_metric,
                                       read_only=True)
        step = manager.best_step() if args.best else args.step
        if args.best and step is None:
            raise ckpt_lib.CheckpointError(f"no checkpoint in {manager.directory} has the metric "
                                           f"{config.train.best_metric!r}")
        meta_step = step if step is not None else manager.latest_step()
        if meta_step is None:
            raise ckpt_lib.CheckpointError(f"no checkpoint in {manager.directory}")
        # an imported workdir (sfr-jax import) leaves steps_per_epoch open; evaluation does not need it
        spe = manager.read_meta(meta_step).get("steps_per_epoch") or 1
        run = loop.setup(config, workdir, restore=False, spe=spe)
        loop.restore_into(run, step, manager=manager)
        if config.model.recompute_adjacency_at_eval:
            loop.recompute_adjacency(run)
        evaluator = Evaluator(run.parts, config, run.mesh, run.shardings)
        name = args.name or f"eval_step_{run.step:08d}"
        results = loop.evaluate(run, evaluator, name)
    except (ckpt_lib.CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"sfr-jax eval: {error}", file=sys.stderr)
        return 2
    import jax
    if jax.process_index() == 0:
        print(report.markdown(results, f"{config.name}: step {run.step}"))
        print(f"\nwritten: {os.path.join(workdir, 'eval', name)}.{{json,md}}")
    return 0
