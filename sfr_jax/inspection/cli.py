"""`sfr-jax inspect`: inspection videos -> per-class defect events, frames.csv and a report per video.

    sfr-jax inspect (--workdir W [--step N | --best] | --checkpoint X.pth|DIR) VIDEOS... --out DIR
                    [--every SECONDS | --fps F] [--classes FILE] [--distance SIDECAR.csv|DIR|ocr|auto]
                    [--length A:B] [--counter-range MIN:MAX] [--counter-max-speed M_PER_S]
                    [--batch B] [--shard I/N]

VIDEOS are video files (anything FFmpeg reads: mp4, avi, mkv, mpg, mov, wmv, mxf, ...), folders (searched
recursively; files that are not videos are counted and named), globs, or folders of frames named by their
time (000012.500.png, t=12.5s.jpg). Results go to DIR/<video name>/ and DIR/summary.csv; a rerun skips
finished videos whose outputs are all there. A video that is cut short or unreadable
yields what decoded and a status, the others go on; the exit code is then 2.

Distance along the pipe: --distance SIDECAR (time_s,distance_m) or a folder of <video name>.csv; --distance ocr
reads the counter burnt into the picture (RapidOCR, sfr_jax/inspection/ocr.py and odometer.py) and falls back
on --length when it finds none; --distance auto takes a sidecar beside the video (videos/a.mp4 -> videos/a.csv)
when there is one, else does as ocr. frames.csv and events say each distance's source.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from sfr_jax import cli, options
from sfr_jax.errors import InputError, MissingInput, OutputError
from sfr_jax.eval import heatmaps
from sfr_jax.inspection import distance, events, odometer, quality, run, sources
from sfr_jax.inspection.distance import AUTO, OCR, parse_length
from sfr_jax.serve.backends import open_scorer
from sfr_jax.text.classes import check_class_file

EXIT_VIDEOS_FAILED = cli.EXIT_USER_ERROR  # a video that is cut short or unreadable is a problem of the input
# --every: 1 ms is below any camera's frame period (smaller samples every frame anyway); 10000 s (under 3 h)
# is longer than any sensible gap between samples
MIN_EVERY_S, MAX_EVERY_S = 0.001, 10000.0


def build_parser():
    ap = cli.parser("sfr-jax inspect", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_source(ap)
    cli.add_checkpoint_options(ap)
    ap.add_argument("videos", nargs="+", help="video files, folders, globs or frame folders")
    ap.add_argument("--out", required=True, help="output folder: DIR/<video name>/ per video, DIR/summary.csv")
    rate = ap.add_mutually_exclusive_group()
    rate.add_argument("--every", type=options.float_between(MIN_EVERY_S, MAX_EVERY_S, " s"), default=None,
                      metavar="SECONDS", help="score the first frame at or after every SECONDS (default 1)")
    rate.add_argument("--fps", type=options.float_between(1 / MAX_EVERY_S, 1 / MIN_EVERY_S), default=None,
                      help="score F frames per second (--every 1/F)")
    ap.add_argument("--classes", default=None, help="your own classes (.yaml/.csv), scored zero-shot")
    ap.add_argument("--distance", default=None, metavar="SIDECAR|ocr|auto",
                    help="time_s,distance_m CSV of one video, a folder of <video name>.csv, ocr (read the "
                         "counter in the picture) or auto (a sidecar beside the video, else ocr)")
    ap.add_argument("--length", default=None, metavar="START:END",
                    help="metres at each video's start and end, linear in time (with ocr/auto: the fallback)")
    counter = ap.add_argument_group("distance off the picture (--distance ocr|auto; see inspection/odometer.py)")
    plausible = odometer.OdometerConfig()
    counter.add_argument("--counter-range", default=f"{plausible.min_m:g}:{plausible.max_m:g}", metavar="MIN:MAX",
                         help="readings outside these metres are rejected (default %(default)s)")
    counter.add_argument("--counter-max-speed", type=options.positive_float, default=plausible.max_speed_m_s, metavar="M_PER_S",
                         help="a reading the camera could not have reached at this speed is rejected "
                              "(default %(default)s)")
    ap.add_argument("--batch", type=options.positive_int, default=None,
                    help="images per model call (default: the model's)")
    ap.add_argument("--shard", default="0/1", metavar="I/N", help="do only every N-th video from the I-th "
                                                                  "(0-based), e.g. $SLURM_ARRAY_TASK_ID/8")
    tuning = ap.add_argument_group("events (see sfr_jax/inspection/events.py)")
    defaults = events.EventConfig()
    tuning.add_argument("--smooth", type=int, default=defaults.smooth, help="median over K samples (odd)")
    tuning.add_argument("--margin", type=options.fraction, default=defaults.margin,
                        help="hysteresis: an event ends below threshold x (1 - MARGIN)")
    tuning.add_argument("--merge-gap", type=options.nonnegative_float, default=defaults.merge_gap_s,
                        metavar="SECONDS", help="merge events of a class this close")
    tuning.add_argument("--point-below", type=options.nonnegative_float, default=defaults.point_below_s,
                        metavar="SECONDS", help="an event shorter than this is a point observation")
    gate = ap.add_argument_group("frame-quality gate (see sfr_jax/inspection/quality.py)")
    q = quality.QualityConfig()
    gate.add_argument("--no-quality-gate", action="store_true", help="flag no frame")
    gate.add_argument("--dark-below", type=options.finite_float, default=q.dark_below,
                      help="mean luma (0-255); negative: off")
    gate.add_argument("--uniform-below", type=options.finite_float, default=q.uniform_below,
                      help="luma std; negative: off")
    gate.add_argument("--blur-above", type=options.finite_float, default=q.blur_above,
                      help="blur effect (0 sharp .. 1 blurred); above 1: off")
    maps = ap.add_argument_group("where in the pipe (see sfr_jax/eval/heatmaps.py)")
    maps.add_argument("--axis", default="0.5,0.5", metavar="X,Y",
                      help="the pipe axis in the picture for clock positions, fractions of width and height "
                           "(default the centre; set it when the camera is off-centre)")
    maps.add_argument("--no-heatmaps", action="store_true",
                      help="no key-frame heatmaps, peaks or clock positions")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def options_from(args, model_source) -> run.InspectOptions:
    """InspectOptions from parsed arguments (each number already checked by its sfr_jax.options type)."""
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
    return run.InspectOptions(
        every_s=every, batch=args.batch, quality=quality_config, events=event_config, distance=args.distance,
        length=parse_length(args.length) if args.length else None, shard=sources.parse_shard(args.shard),
        progress=not args.no_progress, model=model_source.describe(), odometer=_odometer(args),
        heatmaps=not args.no_heatmaps, axis=heatmaps.parse_axis(args.axis))


def _odometer(args) -> odometer.OdometerConfig:
    """The counter's plausibility rules; --length beside a sidecar is a contradiction, not a fallback."""
    if args.distance not in (None, OCR, AUTO) and args.length:
        raise InputError(f"--distance {args.distance} and --length: give one (a sidecar's distances, or a "
                         "linear run); --length is the fallback only of --distance ocr or auto")
    low, high = parse_length(args.counter_range, "--counter-range")
    if not low < high:
        raise InputError(f"--counter-range {args.counter_range}: need MIN < MAX")
    return odometer.OdometerConfig(min_m=low, max_m=high, max_speed_m_s=args.counter_max_speed)


def load_scorer(source, batch: int | None):
    """The Scorer of the model `source` names: every class it holds (mode None), or those of its classes file."""
    scorer, _ = open_scorer(source, **({"batch_size": batch} if batch else {}))
    return scorer


def check_before_loading(args, inputs: list, options: run.InspectOptions) -> dict:
    """The cheap checks, before the model's load (seconds to minutes): --out can be a folder, the class file
    is valid, every distance sidecar of this shard reads; returns distance.plan's answer."""
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise OutputError(f"--out {args.out} is a file; give a folder for the per-video results")
    if args.classes:
        check_class_file(args.classes)
    return distance.plan(sources.shard(inputs, *options.shard), options.distance)


@cli.verb("sfr-jax inspect")
def main(argv) -> int:
    """Parse, find the videos, load the model, inspect; 0 when every video ended ok."""
    args = build_parser().parse_args(argv)
    model_source = cli.model_source(args, classes=args.classes)
    options = options_from(args, model_source)
    left_out = []
    inputs, problems = sources.expand(args.videos, exclude=[args.out], left_out=left_out)
    said = problems + [(p, sources.describe_left_out(files)) for p, files in left_out]
    if not inputs:  # one line: what each argument held
        raise MissingInput(f"no video found (no file FFmpeg opens as a video, no folder of frames named by time) "
                           f"in {'; '.join(f'{pattern}: {why}' for pattern, why in said) or ' '.join(args.videos)}")
    for pattern, why in said:
        print(f"sfr-jax inspect: {pattern}: {why}", file=sys.stderr)
    distances = check_before_loading(args, inputs, options)
    scorer = load_scorer(model_source, args.batch)
    # the step a workdir's newest/best resolved to: in the report and the resume digest (a new step, new results)
    options = dataclasses.replace(options, model=model_source.describe(getattr(scorer, "provenance", {}).get("step")))
    print(f"sfr-jax inspect: decisions: {scorer.decisions.source}", file=sys.stderr)
    summary = run.inspect_videos(scorer, inputs, args.out, options, distances)
    for source, note in summary.notes:
        print(f"sfr-jax inspect: {source.shown}: {note}", file=sys.stderr)
    for source, status, message in summary.failed:
        print(f"sfr-jax inspect: {source.shown}: {status}: {message}", file=sys.stderr)
    others = sum(len(files) for _, files in left_out)
    print(f"inspected {len(summary.done)}, already done {len(summary.skipped)}, failed {len(summary.failed)} "
          f"of {len(sources.shard(inputs, *options.shard))} video(s) -> {args.out}"
          + (f"; {others} other file(s) left out (named above)" if others else ""), file=sys.stderr)
    return EXIT_VIDEOS_FAILED if summary.failed or problems else 0
