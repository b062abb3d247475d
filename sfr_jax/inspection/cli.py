"""`sfr-jax inspect`: inspection videos -> per-class defect events, frames.csv and a report per video.

    sfr-jax inspect (--workdir W [--step N | --best] | --checkpoint X.pth|DIR) VIDEOS... --out DIR
                    [--every SECONDS | --fps F] [--classes FILE] [--distance SIDECAR.csv|DIR | --length A:B]
                    [--batch B] [--shard I/N]

VIDEOS are video files (anything FFmpeg reads: mp4, avi, mkv, mpg, mov, wmv, ...), folders (searched
recursively), globs, or folders of frames named by their time (000012.500.png, t=12.5s.jpg). Results go to
DIR/<video name>/ and DIR/summary.csv; a rerun skips finished videos. A video that is cut short or unreadable
yields what decoded and a status, the others go on; the exit code is then 2.
"""
from __future__ import annotations

import argparse
import sys

from sfr_jax import cli
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval import heatmaps
from sfr_jax.inspection import events, quality, run, sources
from sfr_jax.convert.cli import add_checkpoint_options
from sfr_jax.inspection.distance import parse_length
from sfr_jax.serve.backends import open_scorer

EXIT_VIDEOS_FAILED = cli.EXIT_USER_ERROR  # a video that is cut short or unreadable is a problem of the input


def build_parser():
    ap = cli.parser("sfr-jax inspect", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_source(ap)
    add_checkpoint_options(ap)
    ap.add_argument("videos", nargs="+", help="video files, folders, globs or frame folders")
    ap.add_argument("--out", required=True, help="output folder: DIR/<video name>/ per video, DIR/summary.csv")
    rate = ap.add_mutually_exclusive_group()
    rate.add_argument("--every", type=float, default=None, metavar="SECONDS",
                      help="score the first frame at or after every SECONDS (default 1)")
    rate.add_argument("--fps", type=float, default=None, help="score F frames per second (--every 1/F)")
    ap.add_argument("--classes", default=None, help="your own classes (.yaml/.csv), scored zero-shot")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--distance", default=None, metavar="SIDECAR",
                       help="time_s,distance_m CSV of one video, or a folder of <video name>.csv")
    where.add_argument("--length", default=None, metavar="START:END",
                       help="metres at each video's start and end, linear in time")
    ap.add_argument("--batch", type=int, default=None, help="images per model call (default: the model's)")
    ap.add_argument("--shard", default="0/1", metavar="I/N", help="do only every N-th video from the I-th "
                                                                  "(0-based), e.g. $SLURM_ARRAY_TASK_ID/8")
    tuning = ap.add_argument_group("events (see sfr_jax/inspection/events.py)")
    defaults = events.EventConfig()
    tuning.add_argument("--smooth", type=int, default=defaults.smooth, help="median over K samples (odd)")
    tuning.add_argument("--margin", type=float, default=defaults.margin,
                        help="hysteresis: an event ends below threshold x (1 - MARGIN)")
    tuning.add_argument("--merge-gap", type=float, default=defaults.merge_gap_s, metavar="SECONDS",
                        help="merge events of a class this close")
    tuning.add_argument("--point-below", type=float, default=defaults.point_below_s, metavar="SECONDS",
                        help="an event shorter than this is a point observation")
    gate = ap.add_argument_group("frame-quality gate (see sfr_jax/inspection/quality.py)")
    q = quality.QualityConfig()
    gate.add_argument("--no-quality-gate", action="store_true", help="flag no frame")
    gate.add_argument("--dark-below", type=float, default=q.dark_below, help="mean luma (0-255); negative: off")
    gate.add_argument("--uniform-below", type=float, default=q.uniform_below, help="luma std; negative: off")
    gate.add_argument("--blur-above", type=float, default=q.blur_above,
                      help="blur effect (0 sharp .. 1 blurred); above 1: off")
    maps = ap.add_argument_group("where in the pipe (see sfr_jax/eval/heatmaps.py)")
    maps.add_argument("--axis", default="0.5,0.5", metavar="X,Y",
                      help="the pipe axis in the picture for clock positions, fractions of width and height "
                           "(default the centre; set it when the camera is off-centre)")
    maps.add_argument("--no-heatmaps", action="store_true",
                      help="no key-frame heatmaps, peaks or clock positions")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def options_from(args) -> run.InspectOptions:
    """InspectOptions from parsed arguments; values a user got wrong are InputErrors."""
    if args.every is not None and not args.every > 0 or args.fps is not None and not args.fps > 0:
        raise InputError("--every and --fps must be > 0")
    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch {args.batch}: must be >= 1")
    every = args.every if args.every is not None else (1.0 / args.fps if args.fps else 1.0)
    try:
        event_config = events.EventConfig(args.smooth, args.margin, args.merge_gap, args.point_below)
    except ValueError as error:
        raise InputError(f"event settings: {error}") from None
    gate_on = not args.no_quality_gate
    quality_config = quality.QualityConfig(
        dark=gate_on and args.dark_below >= 0, dark_below=args.dark_below,
        uniform=gate_on and args.uniform_below >= 0, uniform_below=args.uniform_below,
        blur=gate_on and args.blur_above <= 1, blur_above=args.blur_above)
    model = f"checkpoint={args.checkpoint}" if args.checkpoint else \
        f"workdir={args.workdir} step={args.step} best={args.best}"
    if args.classes:
        model += f" classes={args.classes}"
    return run.InspectOptions(
        every_s=every, batch=args.batch, quality=quality_config, events=event_config, distance=args.distance,
        length=parse_length(args.length) if args.length else None, shard=sources.parse_shard(args.shard),
        progress=not args.no_progress, model=model, heatmaps=not args.no_heatmaps,
        axis=heatmaps.parse_axis(args.axis))


def load_scorer(args):
    """The Scorer of the model the arguments name: every class (gzsl), or those of --classes."""
    sizes = {"batch_size": args.batch} if args.batch else {}
    scorer, _ = open_scorer(args, None, classes=args.classes, **sizes)  # None: all classes the model holds
    return scorer


@cli.verb("sfr-jax inspect")
def main(argv) -> int:
    """Parse, find the videos, load the model, inspect; 0 when every video ended ok."""
    args = build_parser().parse_args(argv)
    options = options_from(args)
    inputs, problems = sources.expand(args.videos, exclude=[args.out])
    for pattern, why in problems:
        print(f"sfr-jax inspect: {pattern}: {why}", file=sys.stderr)
    if not inputs:
        raise MissingInput(f"no video found in {' '.join(args.videos)} (videos by extension: "
                           f"{' '.join(sources.VIDEO_EXTENSIONS)}, or folders of frames named by time)")
    scorer = load_scorer(args)
    print(f"sfr-jax inspect: decisions: {scorer.decisions.source}", file=sys.stderr)
    summary = run.inspect_videos(scorer, inputs, args.out, options)
    for source, status, message in summary.failed:
        print(f"sfr-jax inspect: {source.path}: {status}: {message}", file=sys.stderr)
    print(f"inspected {len(summary.done)}, already done {len(summary.skipped)}, failed {len(summary.failed)} "
          f"of {len(sources.shard(inputs, *options.shard))} video(s) -> {args.out}", file=sys.stderr)
    return EXIT_VIDEOS_FAILED if summary.failed or problems else 0
