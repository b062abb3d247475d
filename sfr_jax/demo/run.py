"""`sfr-jax demo` (`make demo`): the whole story on an embedded miniature, on a CPU, in minutes.

Every stage is cached under --out (a finished stage is skipped by the next run, an interrupted one resumes,
a changed parameter redoes that stage and every stage after it); the engine is sfr_jax/demo/engine.py, each
stage a module of sfr_jax/demo/stages/, and STAGE_MODULES below their order. Verbs run through the one verb
table (sfr_jax/verbs.py), as on the command line.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from sfr_jax import cli, options
from sfr_jax.demo import summary
from sfr_jax.demo.context import DEFAULT_IMAGE_SIZE, DEFAULT_OUT, DEFAULT_SEED, SIZES, Context
from sfr_jax.demo.engine import Stages, StageFailed, say
from sfr_jax.demo.stages import calibrate, clip, data, evaluate, export, finetune, inspect, prepare, review, train

# The stages in order. A module holds STAGE, or stages(ctx) for a group / a stage whose shape depends on
# the options (the training rows; calibrate, which follows all of them). A new stage: one module, one entry.
STAGE_MODULES = (data, clip, prepare, train, calibrate, evaluate, export, inspect, review, finetune)


def stages(ctx: Context) -> list:
    """The demo's Stage objects for this run, in order."""
    out = []
    for module in STAGE_MODULES:
        out += [module.STAGE] if hasattr(module, "STAGE") else module.stages(ctx)
    return out


def stage_list_text() -> str:
    """The numbered stages as --help shows them: each stage module's docstring, first sentence."""
    lines, ctx = ["Stages (each cached under --out):"], Context(out=DEFAULT_OUT)
    groups = list(dict.fromkeys((s.group or s.name) for s in stages(ctx)))
    modules = {m.__name__.rsplit(".", 1)[1]: m for m in STAGE_MODULES}
    for number, group in enumerate(groups, 1):
        doc = " ".join(modules[group].__doc__.split())
        lines.append(f"  {number:>2} {group:<10}{doc.split(': ', 1)[-1]}")
    lines.append(f"  {len(groups) + 1:>2} summary   the paper's Table 3 in miniature, the decisions, the predictions, "
                 "the videos' events, the review loop's table, and where everything is")
    return "\n".join(lines)


def build_parser():
    import textwrap

    epilog = __doc__ + "\n" + "\n".join(textwrap.fill(line, 116, subsequent_indent=" " * 15, break_on_hyphens=False)
                                        for line in stage_list_text().splitlines())
    ap = cli.parser("sfr-jax demo", __doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog=epilog)
    ap.add_argument("--out", default=DEFAULT_OUT, help="cache folder of every stage (default %(default)s)")
    ap.add_argument("--seed", type=options.nonnegative_int, default=DEFAULT_SEED, help="seed of the data, the pre-training and SFR-Net")
    ap.add_argument("--quick", action="store_true", help="a shortened run (CI): tiny sets, a few steps")
    ap.add_argument("--steps", type=options.positive_int, default=None, help="SFR-Net training steps (default: the config's epochs)")
    ap.add_argument("--pretrain-steps", type=options.positive_int, default=None, help="tiny-CLIP pre-training steps")
    ap.add_argument("--pretrain-jitter", action=argparse.BooleanOptionalAction, default=True,
                    help="brightness/contrast/noise jitter in pre-training, as web photos vary (default on)")
    ap.add_argument("--pretrain-here", action="store_true",
                    help="pre-train the tiny CLIP even where its recipe's result ships with sfr_jax (seed 0's)")
    ap.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=None,
                    help="also train the +RS and +RS +MEF rows of Table 3 (default: on, off with --quick)")
    ap.add_argument("--fresh", action="store_true", help="delete --out first and redo every stage")
    ap.add_argument("--image-size", type=options.positive_int, default=DEFAULT_IMAGE_SIZE, help="image size of the tiny CLIP and SFR-Net")
    return ap


def context(args) -> Context:
    """The run's Context from the parsed options."""
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.steps is not None:
        size["train_steps"] = args.steps
    size["jitter"] = args.pretrain_jitter
    if args.pretrain_steps is not None:
        size["pretrain_steps"] = args.pretrain_steps
    ablation = (not args.quick) if args.ablation is None else args.ablation
    return Context(out=os.path.abspath(args.out), seed=args.seed, image_size=args.image_size, quick=args.quick,
                   ablation=ablation, size=size, pretrain_here=args.pretrain_here)


@cli.verb("sfr-jax demo")
def main(argv) -> int:
    """Entry point of `sfr-jax demo`."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.time()
    ctx = context(args)
    engine = Stages(ctx.out, args.fresh)
    plan = stages(ctx)
    try:
        engine.run_all(plan, ctx)
        total = len(dict.fromkeys(s.group or s.name for s in plan)) + 1
        say(f"[{total}/{total}] summary")
        summary.show_summary(ctx, plan, ctx.info["evaluate"]["results"], engine.timings, started)
    except StageFailed as error:
        print(f"sfr-jax demo: {error}", file=sys.stderr)
        return 1
    return 0
