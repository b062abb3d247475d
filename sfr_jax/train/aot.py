"""Compile the real train and eval steps for a mesh from shapes alone, ahead of time, and read what the
compiler says: memory per device, FLOPs and HBM traffic, or that the program does not fit.

The state is abstract (jax.ShapeDtypeStruct leaves with their shardings, from infer.model.abstract_parts),
so nothing is loaded or materialised; the devices are this machine's or those of a TPU topology that is
not here (sfr_jax.topology), and a TPU compiler refuses a program that does not fit its chip's HBM.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import re
import time

import jax
import jax.numpy as jnp

from sfr_jax import chips, parallel
from sfr_jax import config as config_lib
from sfr_jax import topology as topology_lib
from sfr_jax.errors import UserError
from sfr_jax.infer import model as model_lib
from sfr_jax.infer import steps as infer_steps
from sfr_jax.train import optim, steps
from sfr_jax.train.flops import function_flops
from sfr_jax.train.configs import typed
from sfr_jax.train.run import Layout, state_shardings, steps_per_epoch

log = logging.getLogger("sfr_jax")


@dataclasses.dataclass(frozen=True)
class Target:
    """The devices to compile for: `name` is a topology ('v5e:2x2') or 'local'."""

    name: str
    devices: tuple
    processes: int
    chip: chips.Chip | None  # None: not in the catalogue (e.g. a CPU)

    @property
    def platform(self) -> str:
        return self.devices[0].platform

    @property
    def kind(self) -> str:
        return self.devices[0].device_kind

    def memory_limit(self) -> float:
        """Bytes a program may use per device: the local device's limit, else the chip's HBM, else nan."""
        if self.name == "local":
            try:
                return float(self.devices[0].memory_stats()["bytes_limit"])
            except Exception:  # CPUs report none
                pass
        return self.chip.hbm_bytes if self.chip else math.nan


def target(topology: str = "") -> Target:
    """The devices of `topology` (libtpu's spelling or an accelerator type), or every device of this run."""
    if topology:
        devices = tuple(topology_lib.devices(topology))
        return Target(topology_lib.libtpu_name(topology), devices, len({d.process_index for d in devices}),
                      chips.of_device(devices[0]))
    devices = tuple(jax.devices())
    return Target("local", devices, jax.process_count(), chips.of_device(devices[0]))


@dataclasses.dataclass
class Plan(Layout):
    """A run config laid out on a target's mesh, its state abstract (shapes and shardings, no values)."""

    target: Target


def resolved(config, target: Target, **overrides):
    """A copy of `config` as it would run on `target`: model.scan_layers 'auto' becomes what the target's
    backend does (scan only on CPU), since this process's backend (a CPU) is not the target's; `overrides`
    are dotted keys."""
    config = copy.deepcopy(config)
    with config.unlocked():
        if config.model.scan_layers == "auto" and target.name != "local":
            config.model.scan_layers = "on" if target.platform == "cpu" else "off"
        config_lib.set_values(config, overrides)
    return config


def _abstract(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def plan(config, target: Target, **overrides) -> Plan:
    """Lay `config` out on the target's devices with the config's mesh, as it would run there (`resolved`,
    with `overrides`); nothing is materialised."""
    config = resolved(config, target, **overrides)
    mesh = parallel.make_mesh(config.mesh.data, config.mesh.model, devices=list(target.devices))
    try:
        spe = steps_per_epoch(config)
    except UserError as error:  # the schedule's length does not change what is compiled
        log.info("no steps per epoch from the data (%s); the dry run assumes 1", error)
        spe = 1
    configs = typed(config)
    parts = model_lib.abstract_parts(configs.model)
    tx = optim.make_optimizer(configs.optim, spe)
    opt_state = jax.eval_shape(tx.init, parts.trainable)
    shardings = state_shardings(mesh, parts.trainable, opt_state, parts.frozen)
    return Plan(config, configs, mesh, parts, tx, shardings, _abstract(parts.trainable, shardings["trainable"]),
                _abstract(opt_state, shardings["opt_state"]), _abstract(parts.frozen, shardings["frozen"]),
                target=target)


@dataclasses.dataclass(frozen=True)
class Compiled:
    """What one compile of a step says, per device; byte counts are nan where the backend gives none."""

    step: str  # 'train' or 'eval'
    global_batch: int
    per_device_batch: int
    fits: bool | None  # None: no memory limit known
    argument: float = math.nan
    output: float = math.nan
    temp: float = math.nan
    alias: float = math.nan
    required: float = math.nan  # what the compiler said it needs when it refused
    available: float = math.nan  # what it offers (a chip's HBM less what the runtime keeps)
    limit: float = math.nan  # the device's memory (the catalogue's HBM, or the local device's limit)
    xla_flops: float = math.nan  # XLA's cost analysis of the per-device program
    bytes_accessed: float = math.nan  # HBM traffic of the per-device program, by XLA's cost analysis
    model_flops: float = math.nan  # matmul FLOPs of the whole step, from its jaxpr (every device together)
    compile_s: float = math.nan
    message: str = ""
    scanned: bool = False  # the layer stacks run as a lax.scan (XLA's cost analysis sees one layer)

    @property
    def total(self) -> float:
        """Bytes per device: arguments + outputs + temporaries - donated."""
        return self.argument + self.output + self.temp - self.alias

    def flops_per_device(self, devices: int) -> float:
        """FLOPs one device runs: XLA's count of the compiled program (it shares what XLA merged, e.g. one
        image encoding for all eval modes) unless a scanned stack makes it see one layer, else the jaxpr's
        matmuls split over the devices."""
        if math.isfinite(self.xla_flops) and not self.scanned:
            return self.xla_flops
        return self.model_flops / devices


_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}  # XLA prints binary units
_NEEDS = (re.compile(r"required[^(]*\(([\d.]+)([KMGT]?)i?B?\) exceeds available \w+ \(([\d.]+)([KMGT]?)i?B?\)"),
          re.compile(r"[Uu]sed ([\d.]+)([KMGT]?)i?B? of ([\d.]+)([KMGT]?)i?B?"))


def out_of_memory(error: Exception) -> tuple[float, float] | None:
    """(bytes required, bytes available) of a compiler's out-of-memory refusal (nan where its message gives
    no figure), or None when `error` is not one."""
    text = str(error)
    if "RESOURCE_EXHAUSTED" not in text and "out of memory" not in text.lower():
        return None
    for pattern in _NEEDS:
        match = pattern.search(text)
        if match:
            a, ua, b, ub = match.groups()
            return float(a) * _UNITS[ua], float(b) * _UNITS[ub]
    return math.nan, math.nan


def _compile(step: str, fn, args, plan_: Plan, global_batch: int) -> Compiled:
    per_device = parallel.check_batch(global_batch, plan_.mesh, f"{step}.global_batch", plan_.target.processes)
    layers = plan_.config.model.scan_layers  # 'auto' scans in training on the CPU backend (models.clip.Encoder)
    scanned = layers == "on" or (layers == "auto" and step == "train" and jax.default_backend() == "cpu")
    common = dict(step=step, global_batch=global_batch, per_device_batch=per_device, scanned=scanned,
                  limit=plan_.target.memory_limit(), model_flops=function_flops(fn, *args))
    start = time.time()
    log.info("compiling the %s step for %s (%d images per device)...", step, plan_.target.name, per_device)
    try:
        compiled = fn.lower(*args).compile()
    except Exception as error:
        needs = out_of_memory(error)
        if needs is None:
            raise
        log.info("  does not fit (%.0f s)", time.time() - start)
        return Compiled(fits=False, required=needs[0], available=needs[1], compile_s=time.time() - start,
                        message=str(error).strip().splitlines()[0][:400], **common)
    seconds = time.time() - start
    log.info("  compiled (%.0f s)", seconds)
    memory = {}
    try:
        m = compiled.memory_analysis()
        memory = dict(argument=float(m.argument_size_in_bytes), output=float(m.output_size_in_bytes),
                      temp=float(m.temp_size_in_bytes), alias=float(m.alias_size_in_bytes))
    except Exception:  # not every backend reports memory
        pass
    cost = {}
    try:
        cost = compiled.cost_analysis()
        cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
    except Exception:
        pass
    result = Compiled(fits=None, xla_flops=float(cost.get("flops", math.nan)),
                      bytes_accessed=float(cost.get("bytes accessed", math.nan)), compile_s=seconds,
                      **memory, **common)
    # A TPU compiler refuses what does not fit, so a program it compiled fits; elsewhere compare.
    if plan_.target.platform == "tpu":
        fits = True
    elif math.isnan(result.limit) or math.isnan(result.total):
        fits = None
    else:
        fits = result.total <= result.limit
    return dataclasses.replace(result, fits=fits)


def train_args(plan_: Plan, global_batch: int) -> tuple:
    """Abstract arguments of the train step: state, a uint8 batch, step, key."""
    size, mesh = plan_.config.data.image_size, plan_.mesh
    sh, rep = parallel.batch_sharding(mesh), parallel.replicated(mesh)
    batch = {"image": jax.ShapeDtypeStruct((global_batch, size, size, 3), jnp.uint8, sharding=sh),
             "labels": jax.ShapeDtypeStruct((global_batch, plan_.parts.class_set.num_classes), jnp.float32,
                                            sharding=sh)}
    key = jax.eval_shape(lambda: jax.random.key(plan_.config.seed))
    return (plan_.trainable, plan_.opt_state, plan_.frozen, batch, jax.ShapeDtypeStruct((), jnp.int32, sharding=rep),
            jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=rep))


def train_step(plan_: Plan, global_batch: int):
    """The jitted steps.make_train_step of the plan for `global_batch` images (a loss.group_size that does
    not divide it becomes one SCL group: the same memory and FLOPs)."""
    loss = plan_.configs.loss
    if loss.group_size and global_batch % loss.group_size:
        loss = dataclasses.replace(loss, group_size=0)
    m = plan_.configs.model
    return steps.make_train_step(plan_.parts, plan_.tx, loss, (m.mean, m.std), plan_.mesh, plan_.shardings)


def train_flops(plan_: Plan, global_batch: int) -> float:
    """Matmul FLOPs of one train step of `global_batch` images, from its jaxpr (traced, not compiled)."""
    return function_flops(train_step(plan_, global_batch), *train_args(plan_, global_batch))


def compile_train(plan_: Plan, global_batch: int) -> Compiled:
    """Compile the train step for `global_batch` images."""
    return _compile("train", train_step(plan_, global_batch), train_args(plan_, global_batch), plan_, global_batch)


def eval_modes(parts) -> dict:
    """{mode: class ids} of an evaluation, as the evaluator scores them."""
    cs = parts.class_set
    return {name: tuple(ids) for name, ids in (("zsl", cs.ids("zsl")), ("gzsl", cs.ids("gzsl"))) if ids}


def compile_eval(plan_: Plan, global_batch: int) -> Compiled:
    """Compile infer.steps.make_eval_step (every mode in one program) for `global_batch` images."""
    mesh, parts = plan_.mesh, plan_.parts
    modes = eval_modes(parts)
    fn = infer_steps.make_eval_step(parts, mesh, plan_.shardings, modes, plan_.configs.model.mean,
                                    plan_.configs.model.std)
    rep = parallel.replicated(mesh)
    text = {name: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep) for name, s in
            ((name, jax.eval_shape(lambda t, f, ids=ids: parts.merge(t, f).text_features(ids),
                                   plan_.trainable, plan_.frozen)) for name, ids in modes.items())}
    size = plan_.configs.model.image_size
    images = jax.ShapeDtypeStruct((global_batch, size, size, 3), jnp.uint8, sharding=parallel.batch_sharding(mesh))
    return _compile("eval", fn, (plan_.trainable, plan_.frozen, images, text), plan_, global_batch)
