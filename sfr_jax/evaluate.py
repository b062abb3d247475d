"""`sfr-jax eval` and `sfr-jax calibrate`: a saved step of a workdir scored on a prepared split with the run's
saved config.

    sfr-jax eval --workdir DIR [--step N | --best] [--recompute-adjacency] [--data-dir D] [--split S]
                 [--batch B] [--name NAME] [--write-scores]
    sfr-jax calibrate --workdir DIR [--step N | --best] [--split val] [--objective f2|f1|recall=0.9]
                      [--rule zscore|global] [--confident-precision 0.9]

eval writes DIR/eval/NAME.{json,md} and prints the tables (F2-CIW / F1-Normal at 0.5 and, when the step has
a calibration, at its thresholds); --write-scores also writes DIR/eval/<split>_sigmoid.csv for the Sewer-ML
benchmark's scoring script. calibrate fits per-class decision thresholds and probabilities on a labelled
split (a recall-oriented threshold by --objective and a precision-oriented one, the `confident` tier) and
writes DIR/calibration/<step>.json, which predict, eval, inspect and export then use.
"""
from __future__ import annotations

import os
import sys

import jax

from sfr_jax import cli, options
from sfr_jax import config as config_lib
from sfr_jax import logs, parallel
from sfr_jax.data import tfrecords
from sfr_jax.errors import ConfigError, InputError, OutputError
from sfr_jax.eval import calibration, calibration_record, metrics, report, sewer_scores
from sfr_jax.eval.decisions import Decisions
from sfr_jax.eval.evaluator import EvalConfig, Evaluator
from sfr_jax.infer import restore
from sfr_jax.workdir import Workdir


def _common(ap):
    cli.add_model_source(ap, checkpoint=False)
    ap.add_argument("--data-dir", default=None, help="prepared data folder (default: the run's)")
    ap.add_argument("--batch", type=options.positive_int, default=None, help="global evaluation batch")
    cli.add_distributed(ap)


def build_parser():
    ap = cli.parser("sfr-jax eval", "ML-ZSL / ML-GZSL tables of a saved step")
    _common(ap)
    ap.add_argument("--recompute-adjacency", action="store_true",
                    help="recompute GR's adjacency with the trained text encoder (the reference's evaluation)")
    ap.add_argument("--split", default=None, help="split sub-folder (default: the run's eval split)")
    ap.add_argument("--name", default=None, help="report name under WORKDIR/eval (default: eval_step_N)")
    ap.add_argument("--write-scores", action="store_true",
                    help="also write WORKDIR/eval/<split>_sigmoid.csv in the Sewer-ML benchmark's format")
    return ap


def build_calibrate_parser():
    ap = cli.parser("sfr-jax calibrate", "per-class decision thresholds and probabilities fitted on a labelled split")
    _common(ap)
    ap.add_argument("--split", default="val",
                    help="labelled split sub-folder to fit on (default: val, e.g. `prepare --val-fraction`)")
    ap.add_argument("--objective", default=calibration.DEFAULT_OBJECTIVE,
                    help="f2 (default, Sewer-ML's), f1, or recall=R: the highest threshold with recall >= R")
    ap.add_argument("--rule", choices=calibration.RULES, default=calibration.DEFAULT_RULE,
                    help="how unseen classes (no labels) get thresholds: zscore (per-class standardised scores) "
                         "or global (one threshold over all seen classes)")
    ap.add_argument("--confident-precision", type=float, default=calibration.DEFAULT_CONFIDENT_PRECISION,
                    help="the `confident` tier: per class the lowest threshold with at least this precision on "
                         "the split (default 0.9); decisions between the two thresholds are for `review`")
    ap.add_argument("--force", action="store_true",
                    help="write the calibration even when too few seen classes have enough positives on the split "
                         f"(fewer than half with >= {calibration_record.MIN_POSITIVES}); it then replaces the old one")
    return ap


def eval_config(args):
    """The workdir's run config with this evaluation's data, split, batch and process settings."""
    config = Workdir(args.workdir).read_config()
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch {args.batch}: must be positive")
    with config.unlocked():
        if args.data_dir:
            config.data.dir = os.path.abspath(args.data_dir)
        if getattr(args, "split", None):
            config.data.eval_split = args.split
        if args.batch:
            config.eval.global_batch = args.batch
        if getattr(args, "recompute_adjacency", False):
            config.model.recompute_adjacency_at_eval = True
    config_lib.use_process_flags(config, args.coordinator, args.num_processes, args.process_id, fresh=True)
    tfrecords.read_info(os.path.join(config.data.dir, config.data.eval_split))  # before the (long) model load
    return config


def open_step(args):
    """(the run config of this evaluation, the step restored for scoring: no optimiser, no training run)."""
    config = eval_config(args)
    parallel.initialize_for(config.distributed)
    logs.setup(None)
    restored = restore.restore_step(args.workdir, args.step, args.best, config)
    return config, restored


@cli.verb("sfr-jax eval")
def eval_main(argv) -> int:
    """Re-evaluate a saved step of a run with its saved config."""
    args = build_parser().parse_args(argv)
    config, run = open_step(args)
    workdir = run.workdir
    if config.model.recompute_adjacency_at_eval:
        restore.recompute_adjacency(run)
    evaluator = Evaluator(run.parts, EvalConfig.from_config(config), run.mesh, run.shardings)
    decisions = Decisions.for_step(workdir.path, run.step, run.parts.class_set)
    name = args.name or f"eval_step_{run.step:08d}"
    if args.write_scores:
        logits, labels, filenames = evaluator.scores(run.trainable, run.frozen, with_filenames=True)
        results = evaluator.tables(logits, labels, decisions)
        csv_path = os.path.join(workdir.eval_dir, sewer_scores.sigmoid_csv_name(config.data.eval_split))
        sewer_scores.write_sigmoid_csv(csv_path, filenames, metrics.sigmoid(logits["gzsl"]),
                                       run.parts.class_set.codes)
    else:
        results = evaluator.run(run.trainable, run.frozen, decisions=decisions)
    results["step"], results["decisions"] = run.step, decisions.source
    if jax.process_index() == 0:
        report.write(results, workdir.eval_dir, name, f"{config.name}: step {run.step}")
        print(report.markdown(results, f"{config.name}: step {run.step}"))
        print(f"\nwritten: {os.path.join(workdir.eval_dir, name)}.{{json,md}}"
              + (f" and {csv_path}" if args.write_scores else ""))
        print(f"decisions: {decisions.source}")
    return 0


@cli.verb("sfr-jax calibrate")
def calibrate_main(argv) -> int:
    """Fit decision thresholds and Platt probabilities of a saved step on a labelled split."""
    args = build_calibrate_parser().parse_args(argv)
    objective = calibration.parse_objective(args.objective)
    confident_precision = calibration.check_precision(args.confident_precision)
    _check_record_target(args.workdir, args.step)  # before the (long) model load
    config, run = open_step(args)
    if args.split == config.data.train_split:
        print(f"sfr-jax calibrate: warning: --split {args.split} is the training split: its scores are "
              "optimistic, so thresholds fitted on it fire too rarely; prefer a held-out split "
              "(`sfr-jax prepare --val-fraction`)", file=sys.stderr)
    evaluator = Evaluator(run.parts, EvalConfig.from_config(config), run.mesh, run.shardings)
    logits, labels, filenames = evaluator.scores(run.trainable, run.frozen, with_filenames=True)
    class_set = run.parts.class_set
    if not labels[:, list(class_set.seen_ids)].any():
        raise InputError(f"split {evaluator.split_dir} has no positive label of any seen class: calibration "
                         "needs a labelled split")
    short = calibration_record.short_classes(labels, class_set)
    if short:
        counts = ", ".join(f"{code} {n}" for code, n in short)
        what = (f"split {evaluator.split_dir} ({len(filenames)} images) has fewer than "
                f"{calibration_record.MIN_POSITIVES} positives for {len(short)} of the {len(class_set.seen_ids)} "
                f"seen classes ({counts})")
        if not args.force:
            raise InputError(f"{what}: a calibration fitted on it cannot stand, so none is written (an earlier one, if any, "
                             "is kept); calibrate on a larger labelled split, or pass --force")
        print(f"sfr-jax calibrate: warning: {what}; written anyway (--force)", file=sys.stderr)
    record = calibration_record.calibrate(logits["gzsl"], labels, class_set, step=run.step, split=args.split,
                                          filenames=filenames, objective=objective, rule=args.rule,
                                          confident_precision=confident_precision)
    path = calibration_record.write_record(run.workdir.calibration_file(run.step), record)
    print(calibration_summary(record))
    print(f"\nwritten: {path}")
    return 0


def _check_record_target(workdir: str, step) -> None:
    """Refuse at once a calibration that could not be written (its folder a file, not writable)."""
    folder = Workdir(workdir).calibration_dir
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"cannot write calibrations into {folder}: a file of that name exists")
    if os.path.isdir(folder) and not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into the folder {folder}: permission denied")
    if step is not None and os.path.isdir(Workdir(workdir).calibration_file(step)):
        raise OutputError(f"cannot write {Workdir(workdir).calibration_file(step)}: it is a folder")


def calibration_summary(record: dict) -> str:
    """The fitted thresholds and validation figures of a calibration record as a table, with the ECE."""
    lines = [f"calibration of step {record['step']} on split {record['split']['name']} "
             f"({record['split']['images']} images), objective {record['objective']}, unseen classes: "
             f"{record['unseen_rule']} rule", "",
             f"{'class':<6} {'seen':<5} {'threshold':>9} {'fitted':<11} {'support':>7} {'P':>6} {'R':>6} {'F2':>6}"
             + (f" {'confident':>9} {'P':>6} {'R':>6}" if calibration_record.has_tiers(record) else "")]
    for c in record["classes"]:
        v = c["validation"]
        line = (f"{c['code']:<6} {'yes' if c['seen'] else 'no':<5} {c['threshold']:>9.3f} {c['fitted']:<11} "
                f"{v['support']:>7d} {v['precision']:>6.3f} {v['recall']:>6.3f} {v['f2']:>6.3f}")
        if calibration_record.has_tiers(record):
            w = c["confident_validation"]
            at = "none" if c["confident_threshold"] is None else f"{c['confident_threshold']:.3f}"
            line += f" {at:>9} {w['precision']:>6.3f} {w['recall']:>6.3f}"
        lines.append(line)
    if calibration_record.has_tiers(record):
        lines += ["", f"confident: the lowest threshold with precision >= {record['confident_precision']:g} on "
                  "the split ('none': no threshold reaches it, so that class is never confident); decisions "
                  "between the two thresholds are for review"]
    ece = record.get("ece") or {}
    if ece:
        lines += ["", f"expected calibration error ({ece.get('bins', calibration.ECE_BINS)} bins, held-out half): "
                  + ", ".join(f"{k} {v['before']:.3f} -> {v['after']:.3f}" for k, v in ece.items()
                              if isinstance(v, dict) and "before" in v)]
    return "\n".join(lines)
