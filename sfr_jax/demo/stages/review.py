"""Stage group review: a person in the loop, played by the planted truth. A second inspection video (another
seed, other defects) is inspected; the first video's events are reviewed against its planted defects and
become training data with `sfr-jax prepare reviewed`."""
from __future__ import annotations

import os
import shutil

from sfr_jax.data import synthetic_video
from sfr_jax.demo import video_figures
from sfr_jax.demo.engine import Stage, run_verb, say, show
from sfr_jax.demo.stages import inspect, train
from sfr_jax.review import simulate

# Another minute of pipe (another seed): the reviewed unseen class FO again, an unseen class nobody reviews
# (OP, zero-shot before and after) and two seen ones.
SECOND_PLANTED = (("RB", 5.0, 11.0), ("FO", 17.0, 22.0), ("OP", 30.0, 36.0), ("DE", 44.0, 50.0))
SECOND_SEED = 100  # added to the demo's seed
REVIEWED_CLASS = "FO"  # the unseen class of the first video: after the review it trains as seen
MIX_RATIO = 1.0  # frames of the original training data per reviewed frame (so that nothing is forgotten)
NAMES = ("pipe_segment", "pipe_segment_2")  # the reviewed video (the inspect stage's) and the second one


def planted() -> dict:
    """{video name: [Planted]} of both videos."""
    return {NAMES[0]: [synthetic_video.Planted(*p) for p in inspect.VIDEO_PLANTED],
            NAMES[1]: [synthetic_video.Planted(*p) for p in SECOND_PLANTED]}


def figures(reports: dict) -> dict:
    """{video name: video_figures.video_figures} of inspect output folders {video name: folder}."""
    truth = planted()
    return {name: video_figures.video_figures(folder, truth[name], inspect.VIDEO["duration_s"], REVIEWED_CLASS)
            for name, folder in reports.items()}


def second_video(ctx) -> dict:
    """Render the second video and its distance sidecar into OUT/review/videos."""
    folder = ctx.path("review", "videos")
    spec = synthetic_video.VideoSpec(seed=SECOND_SEED + ctx.seed, draw_height=ctx.size["draw"], **inspect.VIDEO,
                                     planted=tuple(synthetic_video.Planted(*p) for p in SECOND_PLANTED))
    video = synthetic_video.write_video(os.path.join(folder, NAMES[1] + ".mp4"), spec, inspect.CODEC)
    distance = synthetic_video.write_distance_csv(os.path.join(folder, NAMES[1] + ".csv"),
                                                  synthetic_video.distance_table(spec))
    return {"video": video, "distance": distance}


def inspect_video(workdir: str, video: str, distance: str, out: str) -> str:
    """`sfr-jax inspect` of one video as the demo's inspect stage runs it; its output folder."""
    run_verb(["inspect", "--workdir", workdir, video, "--out", out, "--every", "0.5", "--distance", distance,
              "--no-progress"])
    return os.path.join(out, os.path.splitext(os.path.basename(video))[0])


def run_before(ctx) -> dict:
    """The second video, inspected by the SFR-Net trained before any review; both videos' figures."""
    second = second_video(ctx)
    folder = inspect_video(train.sfr_workdir(ctx), second["video"], second["distance"], ctx.path("review", "before"))
    reports = {NAMES[0]: os.path.join(ctx.path("inspect"), NAMES[0]), NAMES[1]: folder}
    return {**second, "reports": reports, "figures": figures(reports)}


def run_review(ctx) -> dict:
    """Review a copy of the first video's inspect output against its planted truth, then
    `sfr-jax prepare reviewed` it, mixed with the original training data."""
    reports = ctx.path("review", "reports")
    folder = os.path.join(reports, NAMES[0])
    shutil.copytree(os.path.join(ctx.path("inspect"), NAMES[0]), folder)
    counts = simulate.review_against_truth(folder, planted()[NAMES[0]])
    say("    reviewed " + NAMES[0] + " against its planted defects: "
        + ", ".join(f"{n} {action}" for action, n in sorted(counts.items())))
    data = ctx.path("review", "data")
    run_verb(["prepare", "reviewed", "--reports", reports, "--out", data, "--mix", ctx.path("data"),
              "--mix-ratio", str(MIX_RATIO), "--image-size", str(ctx.image_size), "--seed", str(ctx.seed)])
    return {"decisions": counts, "reports": reports, "data": data}


def stages(ctx) -> list:
    """The second video inspected before any review; the first one reviewed and prepared."""
    return [Stage("review_before", "a second inspection video, inspected before any review", run_before,
                  params=lambda ctx: {"planted": SECOND_PLANTED, "seed": SECOND_SEED, "video": inspect.VIDEO,
                                      "codec": inspect.CODEC},
                  outputs=lambda ctx: [ctx.path("review", "videos"), ctx.path("review", "before")], group="review"),
            Stage("review", "the first video's events reviewed against its planted truth -> training data",
                  run_review, params=lambda ctx: {"class": REVIEWED_CLASS, "mix_ratio": MIX_RATIO},
                  outputs=lambda ctx: [ctx.path("review", "reports"), ctx.path("review", "data")], group="review",
                  where=lambda ctx: [("reviewed video (review.json)",
                                      os.path.join(ctx.path("review", "reports"), NAMES[0]), "  (sfr-jax review "
                                      + show(ctx.path("review", "reports")) + ")")])]
