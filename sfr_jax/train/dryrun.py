"""`sfr-jax train --dry-run [--topology v5e:4x4]`: compile the real train and eval steps for the run's mesh
on this machine's devices or on a TPU slice that is not here, and print per device the batch, memory
against the chip's HBM, FLOPs and a roofline estimate of step time. Needs no data and no weights (the CLIP's
shape comes from clip_dir's config or model.clip_preset). A step that does not fit is said so, by how much,
with the largest per-device batch that does (with and without remat), and the exit code is 3.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from sfr_jax import chips, logs
from sfr_jax.infer import model as model_lib
from sfr_jax.train import aot, fit

EXIT_DOES_NOT_FIT = 3
GIB = 2 ** 30


@dataclasses.dataclass
class Result:
    """The printed report, and whether every step fits (None: no memory limit known, e.g. on a CPU)."""

    text: str
    fits: bool | None

    @property
    def exit_code(self) -> int:
        return EXIT_DOES_NOT_FIT if self.fits is False else 0


def _gib(x: float) -> str:
    return f"{x / GIB:.3f}" if math.isfinite(x) else "n/a"


def state_bytes(tree) -> float:
    """Bytes per device of an abstract state tree with shardings (its own shard of each leaf)."""
    total = 0.0
    for x in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            continue
        shape = x.sharding.shard_shape(x.shape) if x.sharding is not None else x.shape
        total += float(np.prod(shape)) * np.dtype(x.dtype).itemsize
    return total


def estimate(c: aot.Compiled, target: aot.Target) -> chips.Roofline | None:
    """The roofline estimate of a compiled step on the target's chip (None: chip not in the catalogue)."""
    if target.chip is None or not math.isfinite(c.model_flops):
        return None
    return chips.roofline(target.chip, c.flops_per_device(len(target.devices)), c.bytes_accessed)


def memory_line(c: aot.Compiled) -> str:
    """'memory per device: ...' of a compile: the parts, against the limit, and the verdict."""
    of = f" of {_gib(c.limit)} GiB" if math.isfinite(c.limit) else ""
    if c.fits is False and not math.isfinite(c.total):  # refused by the compiler
        more = c.required - c.available
        return (f"memory per device: DOES NOT FIT: the compiler needs {_gib(c.required)} GiB, {_gib(more)} GiB more "
                f"than the {_gib(c.available)} GiB it can use{of} ({c.message})")
    parts = (f"{_gib(c.total)} GiB{of} (arguments {_gib(c.argument)}, outputs {_gib(c.output)}, temporaries "
             f"{_gib(c.temp)}, donated/aliased {_gib(c.alias)})")
    if c.fits is None:
        return f"memory per device: {parts}; no device memory limit known"
    if c.fits:
        return f"memory per device: {parts}: fits"
    return f"memory per device: {parts}: DOES NOT FIT, {_gib(c.total - c.limit)} GiB over"


def roofline_line(c: aot.Compiled, target: aot.Target) -> str:
    r = estimate(c, target)
    if r is None:
        return f"roofline estimate: none (no published peak for {target.kind} in sfr_jax.chips)"
    chip = target.chip
    memory = (f"HBM traffic {r.memory_s * 1e3:.3g} ms at {chip.hbm_bandwidth / 1e9:.0f} GB/s"
              if math.isfinite(r.memory_s) else "no HBM byte count from the compiler")
    return (f"roofline ESTIMATE (not a measurement): {r.seconds * 1e3:.3g} ms/step, {c.global_batch / r.seconds:.0f} "
            f"images/s ({r.bound}-bound; compute {r.compute_s * 1e3:.3g} ms at {chip.bf16_flops / 1e12:.0f} TFLOP/s "
            f"bf16 peak ({'model' if c.scanned or not math.isfinite(c.xla_flops) else 'XLA'} FLOPs), {memory})")


def step_lines(c: aot.Compiled, target: aot.Target) -> list[str]:
    """The report lines of one compiled step."""
    lines = [f"{c.step} step",
             f"  per-device batch: {c.per_device_batch} (global {c.global_batch}, {len(target.devices)} devices)",
             f"  compile time: {c.compile_s:.1f}s", "  " + memory_line(c)]
    if c.fits is False and not math.isfinite(c.total):
        return lines
    if math.isfinite(c.xla_flops):
        total = c.xla_flops * len(target.devices)  # cost analysis describes the per-device program
        lines.append(f"  XLA cost-analysis FLOPs per step: {total:.4g} ({c.xla_flops:.4g} per device, "
                     f"{total / c.global_batch:.4g} per image; it counts a scanned layer stack's body once)")
    else:
        lines.append("  XLA cost-analysis FLOPs per step: unavailable on this backend")
    shared = ("; the jaxpr encodes the images once per eval mode, the compiled program once"
              if c.step == "eval" else "")
    lines.append(f"  model FLOPs per step (matmuls and convolutions, every layer): {c.model_flops:.4g} "
                 f"({c.model_flops / c.global_batch:.4g} per image{shared})")
    lines.append("  " + roofline_line(c, target))
    return lines


def remat_settings(config) -> tuple:
    """The remat settings a batch search tries: the config's, off, and 'block' (the most memory saved)."""
    return tuple(dict.fromkeys((config.model.remat, "", "block")))


def search_lines(config, target: aot.Target, step: str, failing: aot.Compiled, max_compiles: int) -> list[str]:
    """The largest per-device batch that fits, for each remat setting (train) or as configured (eval)."""
    n = len(target.devices)
    plan = aot.plan(config, target)
    state = state_bytes(plan.trainable) + state_bytes(plan.opt_state) + state_bytes(plan.frozen)
    room = failing.available if math.isfinite(failing.available) else failing.limit
    if step == "train" and state >= room:  # (an eval step leaves out what it does not read)
        return [f"no {step} batch fits: the state alone takes {_gib(state)} GiB per device, the chip offers "
                f"{_gib(room)} GiB; split it over more chips with mesh.model > 1"]
    lines = [f"largest per-device {step} batch that fits (searched by compiling, at most {max_compiles} compiles "
             "each):"]
    for remat in (remat_settings(config) if step == "train" else (config.model.remat,)):
        plan = aot.plan(config, target, **{"model.remat": remat})
        compile_at = aot.compile_train if step == "train" else aot.compile_eval
        first = compile_at(plan, failing.global_batch) if remat != config.model.remat else failing
        name = f"remat {remat or 'off'}"
        if first.fits:
            lines.append(f"  {name}: the configured {first.per_device_batch} fits ({_gib(first.total)} GiB)")
            continue
        quantum = fit.quantum_for(first.per_device_batch)
        found = fit.largest_batch(lambda b: compile_at(plan, b * n), first, max_compiles, quantum)
        if not found.largest:
            lines.append(f"  {name}: " + ("not even 1 image per device fits" if found.certain else
                                          f"none found in {found.compiles} compiles"))
            continue
        c = found.fitting
        r = estimate(c, target)
        speed = f", estimate {c.global_batch / r.seconds:.0f} images/s" if r else ""
        bound = "" if found.certain else f" or more (search stopped after {found.compiles} compiles)"
        step_of = f", searched in steps of {quantum}" if quantum > 1 else ""
        lines.append(f"  {name}: {found.largest}{bound} (global {c.global_batch}, {_gib(c.total)} GiB{speed}"
                     f"{step_of})")
    return lines


def dry_run(config, topology: str = "", max_compiles: int = 8) -> Result:
    """Compile the train and eval steps of `config` for `topology` (or the local devices); returns (and
    prints on process 0) the report; progress goes to the log (stderr)."""
    logs.setup(None)
    target = aot.target(topology)
    plan = aot.plan(config, target)
    c = plan.config
    where = "this machine" if target.name == "local" else f"topology {target.name}"
    chip = target.chip
    about = (f" ({chip.name}: {chip.hbm_bytes / GIB:.0f} GiB HBM, {chip.bf16_flops / 1e12:.0f} TFLOP/s bf16, "
             f"{chip.hbm_bandwidth / 1e9:.0f} GB/s)" if chip else "")
    _, source = plan.configs.model.clip_architecture()
    scan = {"on": "scanned", "off": "unrolled", "auto": "auto (scanned on CPU in training)"}[c.model.scan_layers]
    lines = [f"dry run of {c.name} for {where}: {len(target.devices)} x {target.kind}{about}, "
             f"{target.processes} process(es)",
             f"mesh {dict(plan.mesh.shape)}; CLIP from {source}; {c.data.image_size} px, {c.model.dtype}, "
             f"remat {c.model.remat or 'off'}, layers {scan}",
             f"trainable parameters: {model_lib.count(plan.trainable)}; state per device: trainable + optimiser "
             f"{_gib(state_bytes(plan.trainable) + state_bytes(plan.opt_state))} GiB, frozen "
             f"{_gib(state_bytes(plan.frozen))} GiB"]
    if c.model.dtype != "bfloat16" and chip is not None:
        lines.append("note: the roofline assumes the bf16 peak; this config computes in float32 (slower matmuls)")
    verdicts = []
    for step, batch in (("train", c.train.global_batch), ("eval", c.eval.global_batch)):
        compiled = (aot.compile_train if step == "train" else aot.compile_eval)(plan, batch)
        lines += step_lines(compiled, target)
        if compiled.fits is False:
            lines += search_lines(config, target, step, compiled, max_compiles)
        verdicts.append(compiled.fits)
    fits = False if False in verdicts else (None if None in verdicts else True)
    verdict = {True: "fits", False: f"DOES NOT FIT (exit code {EXIT_DOES_NOT_FIT})",
               None: "no device memory limit known: not judged"}[fits]
    lines.append(f"verdict: {verdict}")
    text = "\n".join(lines)
    if jax.process_index() == 0:
        print(text, flush=True)
    return Result(text, fits)
