"""`sfr-jax eval`: ML-ZSL / ML-GZSL tables of any saved step of a workdir, with the run's saved config.

    sfr-jax eval --workdir DIR [--step N | --best] [--recompute-adjacency] [--data-dir D] [--split S]
                 [--batch B] [--name NAME]

Writes DIR/eval/NAME.{json,md} and prints the Markdown tables.
"""
from __future__ import annotations

import os

import jax

from sfr_jax import cli
from sfr_jax.errors import ConfigError
from sfr_jax.eval import report
from sfr_jax.eval.evaluator import Evaluator
from sfr_jax.train import cli as train_cli
from sfr_jax.train import logging as run_log
from sfr_jax.train import workdir as workdir_lib
from sfr_jax.train.loop import evaluate
from sfr_jax.train.run import recompute_adjacency


def build_parser():
    ap = cli.parser("sfr-jax eval", "ML-ZSL / ML-GZSL tables of a saved step")
    cli.add_model_source(ap, checkpoint=False)
    ap.add_argument("--recompute-adjacency", action="store_true",
                    help="recompute GR's adjacency with the trained text encoder (the reference's evaluation)")
    ap.add_argument("--data-dir", default=None, help="prepared data folder (default: the run's)")
    ap.add_argument("--split", default=None, help="split sub-folder (default: the run's eval split)")
    ap.add_argument("--batch", type=int, default=None, help="global evaluation batch")
    ap.add_argument("--name", default=None, help="report name under WORKDIR/eval (default: eval_step_N)")
    cli.add_distributed(ap)
    return ap


def eval_config(args):
    """The workdir's run config with this evaluation's data, split, batch and process settings."""
    config = workdir_lib.run_config(args.workdir)
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch {args.batch}: must be positive")
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
        config.distributed.num_processes = max(args.num_processes, 1)
        config.distributed.process_id = max(args.process_id, 0)
    workdir_lib.fit_batch_to_devices(config)  # evaluation does not train: any device count will do
    return config


@cli.verb("sfr-jax eval")
def eval_main(argv) -> int:
    """Re-evaluate a saved step of a run with its saved config."""
    args = build_parser().parse_args(argv)
    workdir = os.path.abspath(args.workdir)
    config = eval_config(args)
    train_cli.start_distributed(config)
    run_log.setup(None)
    run, _ = workdir_lib.load_run(workdir, config, args.step, args.best)
    if config.model.recompute_adjacency_at_eval:
        recompute_adjacency(run)
    evaluator = Evaluator(run.parts, config, run.mesh, run.shardings)
    name = args.name or f"eval_step_{run.step:08d}"
    results = evaluate(run, evaluator, name)
    if jax.process_index() == 0:
        print(report.markdown(results, f"{config.name}: step {run.step}"))
        print(f"\nwritten: {os.path.join(workdir, 'eval', name)}.{{json,md}}")
    return 0
