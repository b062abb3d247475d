"""Stage inspect: a synthetic inspection video with planted defects and a distance counter, `sfr-jax inspect`
with the trained SFR-Net on it, and the events found compared with the planted intervals."""
from __future__ import annotations

import os

from sfr_jax.data import synthetic_video
from sfr_jax.demo.engine import Stage, run_verb, show
from sfr_jax.demo.stages import train
from sfr_jax.inspection import compare

# A minute of pipe with these defects in view over these seconds: classes the tiny demo model sees at 64 px;
# FO is an unseen class (zero-shot in the video too).
VIDEO_PLANTED = (("IN", 6.0, 14.0), ("FO", 20.0, 24.0), ("OK", 30.0, 40.0), ("FS", 50.0, 51.5))
# CIF (352 x 288), a size CCTV recorders write, in MPEG-4 Part 2 (as many recorders do). Not H.264: libx264's
# bytes, and so the events found, varied from run to run (with threads=1 too: a process whose heap had been
# used otherwise encoded other bytes); libavcodec's mpeg4 gives the same bytes every time.
VIDEO = dict(duration_s=60.0, fps=5.0, size=(352, 288))
CODEC = "mpeg4"


def run(ctx) -> dict:
    folder = ctx.path("video")
    spec = synthetic_video.VideoSpec(seed=ctx.seed, draw_height=ctx.size["draw"], **VIDEO,
                                     planted=tuple(synthetic_video.Planted(*p) for p in VIDEO_PLANTED))
    video = synthetic_video.write_video(os.path.join(folder, "pipe_segment.mp4"), spec, CODEC)
    distance = synthetic_video.write_distance_csv(os.path.join(folder, "pipe_segment.csv"),
                                                  synthetic_video.distance_table(spec))
    results = ctx.path("inspect")
    run_verb(["inspect", "--workdir", train.sfr_workdir(ctx), video, "--out", results, "--every", "0.5",
              "--distance", distance, "--no-progress"])
    matches, false_alarms = compare.match(spec.planted, compare.found_events(os.path.join(results, "pipe_segment")))
    long = sorted({e.code for e in false_alarms if e.end_s - e.start_s >= 0.5 * spec.duration_s})
    return {"video": video, "report": os.path.join(results, "pipe_segment", "report.html"),
            "table": compare.table(matches, []), "found": sum(m.found for m in matches),
            "planted": len(matches), "false_alarms": len(false_alarms), "on_most_of_the_video": long}


def _report(ctx) -> list:
    ins = ctx.info["inspect"]
    lines = ["", f"Inspection video ({show(ins['video'])}): {ins['found']} of {ins['planted']} planted defects "
             f"found, {ins['false_alarms']} false alarm(s):"]
    lines += ["  " + line for line in ins["table"].splitlines()]
    if ins["false_alarms"]:
        lines.append(f"  false alarms: {ins['false_alarms']} events (see the report); classes firing over most of the "
                     f"video: {' '.join(ins['on_most_of_the_video']) or 'none'} (their thresholds sit below this "
                     "model's baseline on normal pipe)")
    return lines


STAGE = Stage("inspect", "sfr-jax inspect: a synthetic inspection video, planted vs found", run,
              params=lambda ctx: {"planted": VIDEO_PLANTED, "video": VIDEO, "codec": CODEC},
              outputs=lambda ctx: [ctx.path("video"), ctx.path("inspect")], report=_report,
              where=lambda ctx: [("inspection report (HTML)", ctx.info["inspect"]["report"], "")])
