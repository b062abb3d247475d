"""`sfr-jax train`: train SFR-Net data-parallel on every device of every host, or compile it (--dry-run).

    sfr-jax train --config configs/sewerml.py[:runlocal,bf16] --workdir DIR [--config.optim.head_lr=2e-3]
                  [--dry-run [--topology v5e:4x4]] [--coordinator HOST:PORT --num-processes N --process-id I]

`train` resumes automatically from the newest readable checkpoint in DIR (only keys that may change on a
resume may differ from DIR's config.json). SIGTERM or Ctrl-C saves a checkpoint at the next step and exits
with 143 / 130; running the same command resumes. `--dry-run` exits with 3 when a step does not fit.
"""
from __future__ import annotations

import os

from sfr_jax import cli
from sfr_jax import config as config_lib
from sfr_jax import parallel
from sfr_jax.errors import ConfigError, Interrupted
from sfr_jax.train import dryrun, loop
from sfr_jax.train.configs import typed


def build_parser():
    ap = cli.parser("sfr-jax train", __doc__.split("\n\n")[0],
                    epilog="Config: --config FILE[:variants] and --config.KEY=VALUE overrides (ml_collections); "
                           "a misspelt key is an error.")
    ap.add_argument("--workdir", help="run folder: checkpoints, logs, evaluation tables (not needed for --dry-run)")
    ap.add_argument("--dry-run", action="store_true",
                    help="compile the train and eval steps, print batch/memory/FLOPs/estimated speed, do not train")
    ap.add_argument("--topology", default="",
                    help="with --dry-run: compile for this TPU slice instead of the local devices, e.g. v5e:2x2, "
                         "v4:2x2x1, v5p:4x4x4, v6e:8x8 or v5e-64 (needs `pip install -e .[tpu-aot]`)")
    cli.add_distributed(ap)
    return ap


def parse(argv):
    """(the locked, validated run config, the verb's flags) of `sfr-jax train` arguments."""
    config_args, rest = config_lib.split_args(list(argv))
    args = build_parser().parse_args(rest)
    config = config_lib.parse(config_args)
    if not args.workdir and not args.dry_run:
        raise ConfigError("--workdir DIR is required")
    if args.topology and not args.dry_run:
        raise ConfigError("--topology only goes with --dry-run (training runs on the devices it finds)")
    typed(config)  # the choices of every section, checked here at the entry point (train.configs)
    config_lib.use_process_flags(config, args.coordinator, args.num_processes, args.process_id)
    config_lib.resolve_paths(config, os.getcwd())
    return config, args


@cli.verb("sfr-jax train")
def train_main(argv) -> int:
    """Parse flags and config, start the multi-process runtime if configured, train (or dry-run)."""
    config, args = parse(argv)
    parallel.initialize_for(config.distributed)
    if args.dry_run:
        return dryrun.dry_run(config, args.topology).exit_code
    result = loop.train(config, args.workdir)
    if result.signal:  # the checkpoint is saved; a scheduler may requeue the same command
        raise Interrupted(f"stopped by {result.signal} at step {result.step} (checkpoint saved); run the same "
                          "command to resume", result.signal)
    return 0
