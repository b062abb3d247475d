"""Scaling table of the reference recipe per TPU slice and CLIP, from compiles on this machine: writes
benchmarks/scaling.md.

    python benchmarks/scaling.py --cache /tmp/scaling.json          # every slice and model (hours on 2 cores)
    python benchmarks/scaling.py --topologies v5e-8 --models B/16   # one cell

For each slice and CLIP the real train step is compiled for the slice (libtpu: `pip install -e .[tpu-aot]`)
at the recipe's global batch (896, rounded up to a multiple of the chips), bf16. A step that does not fit
is compiled with remat 'block'; if that does not fit either, the largest per-chip batch is searched for
both. The time per step is the roofline ESTIMATE of sfr_jax.chips (compute at the chip's bf16 peak or HBM
traffic at its bandwidth, whichever is longer), turned into hours for the recipe's 10 epochs of the Sewer-ML
training split, chip-hours, and the input-pipeline cores that rate needs. The measured H100 step is set
beside its own estimate. Compiles are cached in --cache (JSON), so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sfr_jax import topology  # noqa: E402

topology.leave_out_absent_tpu()  # before JAX starts: no libtpu warnings on a machine without TPU chips
import jax  # noqa: E402

from sfr_jax import chips  # noqa: E402
from sfr_jax.config import base_config  # noqa: E402
from sfr_jax.fileio import write_json, write_text  # noqa: E402
from sfr_jax.train import aot, fit  # noqa: E402

TOPOLOGIES = ("v5e-8", "v5e-64", "v5e-256", "v5p-128", "v6e-64")
MODELS = {"B/16": ("vit_b16", 224), "L/14@336": ("vit_l14_336", 336)}
SEWERML_TRAIN_IMAGES = 1_040_129  # SewerML_Train.csv rows (SPEC §6)
EPOCHS = 10
RECIPE_BATCH = 896


def log(msg=""):
    print(msg, flush=True)


def recipe_batch(chips_: int) -> int:
    """896, or the next multiple of the chip count when 896 does not split over the chips."""
    return -(-RECIPE_BATCH // chips_) * chips_


def run_config(preset: str, size: int, global_batch: int, remat: str = ""):
    c = base_config()
    c.clip_dir = ""  # the preset's shape, no weights
    c.model.clip_preset = preset
    c.data.image_size = size
    c.model.dtype = "bfloat16"
    c.model.remat = remat
    c.train.global_batch = c.eval.global_batch = global_batch
    return c


class Cache:
    """Compile results by (slice, model, remat, per-chip batch), kept in a JSON file as they come."""

    def __init__(self, path: str):
        self.path = path
        self.entries = {}
        if path and os.path.exists(path):
            with open(path) as f:
                self.entries = json.load(f)

    def get(self, key: str, make):
        if key not in self.entries:
            compiled = make()
            self.entries[key] = dataclasses.asdict(compiled)
            if self.path:
                write_json(self.path, self.entries, indent=1)
        return aot.Compiled(**self.entries[key])


def estimate(compiled: aot.Compiled, chip: chips.Chip, n: int) -> chips.Roofline:
    return chips.roofline(chip, compiled.flops_per_device(n), compiled.bytes_accessed)


def cell(topology: str, model: str, cache: Cache) -> dict:
    """Fit and estimate of one (slice, CLIP) pair: the recipe's batch, then remat, then the largest batch."""
    preset, size = MODELS[model]
    target = aot.target(topology)
    n = len(target.devices)
    batch = recipe_batch(n)
    plans = {}

    def compile_at(remat: str, per_chip: int) -> aot.Compiled:
        def make():
            if remat not in plans:
                plans[remat] = aot.plan(run_config(preset, size, batch, remat), target)
            start = time.time()
            result = aot.compile_train(plans[remat], per_chip * n)
            log(f"  {topology} {model} remat={remat or 'off'} {per_chip}/chip: "
                f"{'fits' if result.fits else 'does not fit'} ({time.time() - start:.0f} s)")
            return result
        return cache.get(f"{target.name}|{model}|{remat}|{per_chip}", make)

    tried = {remat: compile_at(remat, batch // n) for remat in ("",)}
    if not tried[""].fits:
        tried["block"] = compile_at("block", batch // n)
    largest = {}
    if not any(c.fits for c in tried.values()):
        for remat, failing in tried.items():
            found = fit.largest_batch(lambda b, r=remat: compile_at(r, b), failing,
                                      quantum=fit.quantum_for(failing.per_device_batch))
            largest[remat] = found
    options = [(remat, c) for remat, c in tried.items() if c.fits]
    options += [(remat, s.fitting) for remat, s in largest.items() if s.largest]
    best = max(options, key=lambda o: o[1].global_batch / estimate(o[1], target.chip, n).seconds, default=None)
    return dict(topology=topology, libtpu=target.name, model=model, chips=n, chip=target.chip,
                hosts=chips.hosts(target.chip, n), batch=batch, tried=tried, largest=largest, best=best)


def _gib(x: float) -> str:
    return f"{x / 2 ** 30:.1f}" if math.isfinite(x) else "?"


def fit_text(row: dict) -> str:
    chip, first = row["chip"], row["tried"][""]
    hbm = f"{chip.hbm_bytes / 2 ** 30:.0f}"
    if first.fits:
        return f"yes: {_gib(first.total)} of {hbm} GiB"
    parts = [f"no: needs {_gib(first.required)} of {_gib(first.available)} GiB"]
    if row["tried"].get("block") and row["tried"]["block"].fits:
        parts.append(f"with remat block: {_gib(row['tried']['block'].total)} GiB")
    for remat, s in row["largest"].items():
        parts.append(f"largest with remat {remat or 'off'}: {s.largest}/chip" if s.largest
                     else f"remat {remat or 'off'}: not even 1/chip")
    return "; ".join(parts)


def table(rows: list, pipeline_ips: float) -> list[str]:
    lines = ["| slice | chips (hosts) | CLIP | global batch (per chip) | fits in HBM? | used | est. step | "
             "est. images/s | est. hours (10 epochs) | est. chip-hours | input cores (per host) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        head = (f"| {row['topology']} ({row['libtpu']}) | {row['chips']} ({row['hosts']}) | {row['model']} | "
                f"{row['batch']} ({row['batch'] // row['chips']}) | {fit_text(row)} |")
        if row["best"] is None:
            lines.append(head + " – | – | – | – | – | – |")
            continue
        remat, c = row["best"]
        r = estimate(c, row["chip"], row["chips"])
        ips = c.global_batch / r.seconds
        hours = EPOCHS * (SEWERML_TRAIN_IMAGES // c.global_batch) * r.seconds / 3600
        cores = ips / pipeline_ips
        used = f"batch {c.global_batch} ({c.per_device_batch}/chip), remat {remat or 'off'}"
        lines.append(head + f" {used} | {r.seconds * 1e3:.0f} ms ({r.bound}) | {ips:,.0f} | {hours:.2f} | "
                            f"{hours * row['chips']:.1f} | {cores:.0f} ({cores / row['hosts']:.1f}) |")
    return lines


def h100_row(measured_ips: float, batch: int) -> list[str]:
    """The measured H100 train step beside its roofline estimate (compute only: no GPU compile here to read
    its HBM traffic from)."""
    preset, size = MODELS["B/16"]
    plan = aot.plan(run_config(preset, size, batch), aot.target(""), **{"model.scan_layers": "off",
                                                                        "model.attention_impl": "einsum"})
    flops = aot.train_flops(plan, batch)
    h100 = chips.by_name("H100")
    r = chips.roofline(h100, flops)
    est = batch / r.seconds
    return ["| chip | CLIP | batch | measured train images/s | roofline estimate (compute at 989 TFLOP/s bf16) "
            "| measured / estimate |", "| --- | --- | --- | --- | --- | --- |",
            f"| H100 80GB SXM (1 chip) | B/16 | {batch} | {measured_ips:,.0f} | {est:,.0f} "
            f"({r.seconds * 1e3:.1f} ms/step, {flops / batch / 1e9:.1f} GFLOP/image) | {measured_ips / est:.0%} |"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topologies", default=",".join(TOPOLOGIES))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--cache", default="", help="JSON file of compile results (resumes an interrupted run)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "scaling.md"))
    ap.add_argument("--pipeline-ips", type=float, default=631.0,
                    help="train-pipeline images/s per CPU core (benchmarks/README.md: 624-639)")
    ap.add_argument("--h100-ips", type=float, default=3430.0,
                    help="measured H100 train images/s at bf16 batch 512 (benchmarks/README.md)")
    ap.add_argument("--h100-batch", type=int, default=512)
    args = ap.parse_args(argv)
    cache = Cache(args.cache)
    rows = []
    for model in args.models.split(","):
        for slice_name in args.topologies.split(","):
            log(f"{slice_name} {model}")
            rows.append(cell(slice_name, model, cache))
    from importlib.metadata import version
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Scaling estimates for the reference recipe",
             "",
             f"Generated by `python benchmarks/scaling.py` on {stamp} (jax {jax.__version__}, libtpu "
             f"{version('libtpu')}), from compiles of the real train step for each slice on a "
             "CPU. **Times are roofline estimates, not measurements**: the larger of the step's FLOPs at the "
             "chip's peak bf16 rate and its HBM traffic at peak bandwidth (sfr_jax/chips.py gives the published "
             "figures and where they come from). They leave out communication, input stalls and every "
             "inefficiency; the H100 row below shows how far one measured step is from its estimate.",
             "",
             f"Recipe: {EPOCHS} epochs of the Sewer-ML training split ({SEWERML_TRAIN_IMAGES:,} images, the remainder "
             f"of each epoch dropped), global batch {RECIPE_BATCH} (rounded up to a multiple of the chips where "
             "it does not split), bf16 compute, fp32 weights. A slice whose step does not fit at that batch is "
             "tried with remat 'block', then at the largest per-chip batch that fits (searched by compiling); "
             "the estimate uses the fastest option that fits (column 'used'). Input cores: the estimated images/s "
             f"over {args.pipeline_ips:.0f} images/s per core (the train pipeline's measured rate, "
             "benchmarks/README.md).",
             ""] + table(rows, args.pipeline_ips) + ["", "## The estimate against a measurement", ""]
    lines += h100_row(args.h100_ips, args.h100_batch)
    lines += ["", "The H100 estimate counts the same jaxpr FLOPs (einsum attention, layers unrolled) at the "
              "datasheet's dense bf16 peak; with no GPU compile on this machine it has no HBM term. The "
              "measured step reaches the fraction above of it: expect TPU steps to be slower than their "
              "estimates by a similar factor until measured."]
    write_text(args.out, "\n".join(lines) + "\n")
    log("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
