"""Stage prepare: `sfr-jax prepare` of the cctv set into TFRecords, with validation frames carved off the
training split for calibration (training images with unseen labels dropped: the ZSL protocol)."""
from __future__ import annotations

from sfr_jax.data import tfrecords
from sfr_jax.demo.engine import Stage, run_verb

VAL_FRACTION = 0.15  # of the training frames, carved off for `sfr-jax calibrate` (the test split stays untouched)


def run(ctx) -> dict:
    run_verb(["prepare", "sewerml", "--root", ctx.path("raw", "cctv"), "--out", ctx.path("data"),
              "--image-size", str(ctx.image_size), "--format", "png", "--shard-size", "512", "--workers", "2",
              "--val-fraction", str(VAL_FRACTION), "--no-progress"])
    return {split: tfrecords.read_info(ctx.path("data", split))["num_examples"] for split in ("train", "val", "test")}


STAGE = Stage("prepare", "sfr-jax prepare: cctv set -> TFRecords", run,
              params=lambda ctx: {"image_size": ctx.image_size}, outputs=lambda ctx: [ctx.path("data")],
              where=lambda ctx: [("TFRecords", ctx.path("data"), "")])
