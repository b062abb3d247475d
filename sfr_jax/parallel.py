"""Multi-host start-up, the device mesh, and the shardings of state and batches.

One code path for 1 CPU and for a pod: every process runs the same program over a global mesh
('data', 'model'); batches are sharded over every device, the state is replicated or, with mesh.model > 1,
its large tensors are sharded over 'model' (FSDP: XLA gathers each weight where it is used).

Why FSDP and not tensor parallelism for the large frozen CLIP towers: the weights have no gradients and no
optimiser state, so the only thing to split is their storage, and gathering a block's weights moves a fixed
number of bytes per step, while tensor parallelism all-reduces activations (batch x tokens x width, several
per block) and keeps the residual stream and LayerNorms whole on every chip. Every chip keeps its own
images, so a step's compute per chip is that of plain data parallelism.
"""
from __future__ import annotations

import collections
import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from sfr_jax.errors import ConfigError

log = logging.getLogger(__name__)

_initialized = False


def initialize_for(distributed) -> None:
    """initialize() with a run config's `distributed` section."""
    initialize(distributed.coordinator, distributed.num_processes, distributed.process_id,
               distributed.cpu_collectives)


def initialize(coordinator: str = "", num_processes: int = 1, process_id: int = 0,
               cpu_collectives: str = "gloo") -> None:
    """Start JAX's multi-controller runtime when more than one process is configured.

    Explicit `coordinator`/`num_processes`/`process_id` win; otherwise JAX auto-detects TPU pods and SLURM
    (only attempted when their environment variables are present). A single process needs nothing.
    """
    global _initialized
    if _initialized:
        return
    explicit = bool(coordinator) or num_processes > 1
    auto = any(k in os.environ for k in ("SLURM_JOB_ID", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS")) \
        and int(os.environ.get("SLURM_NTASKS", "2")) > 1
    if not explicit and not auto:
        return
    if explicit and (not coordinator or num_processes < 2 or not 0 <= process_id < num_processes):
        raise ConfigError(f"multi-process run needs --coordinator HOST:PORT, --num_processes >= 2 and "
                         f"0 <= --process_id < num_processes; got coordinator={coordinator!r}, "
                         f"num_processes={num_processes}, process_id={process_id}")
    # CPU collectives across processes need an implementation (gloo ships with jaxlib); the setting only
    # concerns the CPU client, so it is harmless on GPU/TPU hosts.
    jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if explicit:
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    else:
        jax.distributed.initialize()
    _initialized = True
    log.info("process %d of %d, %d local / %d global devices", jax.process_index(), jax.process_count(),
             jax.local_device_count(), jax.device_count())


def make_mesh(data: int = -1, model: int = 1, devices=None) -> jax.sharding.Mesh:
    """A ('data', 'model') mesh over every device of every process (or `devices`); -1 means 'all the rest'."""
    n = len(devices) if devices is not None else jax.device_count()
    if model < 1 or n % model:
        raise ConfigError(f"mesh.model={model} must divide the {n} devices")
    if data == -1:
        data = n // model
    if data * model != n:
        raise ConfigError(f"mesh.data={data} x mesh.model={model} != {n} devices; use mesh.data=-1 for all devices")
    return jax.make_mesh((data, model), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2,
                         devices=devices)


def check_batch(global_batch: int, mesh: jax.sharding.Mesh, what: str = "train.global_batch",
                processes: int | None = None) -> int:
    """The per-device batch; a global batch that does not split evenly over the mesh's devices or the
    `processes` (default: this run's) is a clear error."""
    n = mesh.size
    if global_batch % n:
        raise ConfigError(f"config value {what}={global_batch} is not divisible by the {n} devices of the mesh; "
                         f"choose a multiple of {n} (e.g. {max(n, global_batch // n * n)})")
    processes = processes or jax.process_count()
    if global_batch % processes:
        raise ConfigError(f"{what}={global_batch} is not divisible by the {processes} processes")
    return global_batch // n


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
    """Leading (example) axis over every device: 'data', and 'model' too when it has more than one."""
    return NamedSharding(mesh, P(("data", "model")) if mesh.shape["model"] > 1 else P("data"))


# Smaller tensors stay replicated under mesh.model > 1: gathering them would cost more than it saves.
MIN_SHARDED_SIZE = 2 ** 18


def param_sharding(mesh, tree, min_size: int = MIN_SHARDED_SIZE):
    """Shardings for a parameter tree: replicated, or with mesh.model > 1 the largest divisible axis of
    tensors of `min_size` scalars or more over 'model' (FSDP; XLA inserts the gathers)."""
    n_model = mesh.shape["model"]

    def one(x):
        if n_model == 1 or int(np.prod(np.shape(x))) < min_size:
            return replicated(mesh)
        shape = np.shape(x)
        for axis in np.argsort(shape)[::-1]:
            if shape[axis] % n_model == 0:
                spec = [None] * len(shape)
                spec[axis] = "model"
                return NamedSharding(mesh, P(*spec))
        return replicated(mesh)

    return jax.tree.map(one, tree)


def place(tree, shardings):
    """Put a host tree (identical on every process) onto the mesh with the given shardings (same structure).

    Works across processes (each builds its own shards from its host copy) and always copies, so the
    result may be donated without invalidating `tree`.
    """

    def one(x, sharding):
        is_key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        host = np.asarray(jax.random.key_data(x) if is_key else x)
        out = jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
        return jax.random.wrap_key_data(out, impl=jax.random.key_impl(x)) if is_key else out

    return jax.tree.map(one, tree, shardings)


def host_to_global(batch: dict, mesh) -> dict:
    """This process's slice of a global batch (numpy, leading axis) -> global jax.Arrays sharded over 'data'."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def prefetch_to_device(batches, mesh, size: int = 2):
    """Global device batches from host batches, `size` of them sent ahead of the one in use, so that
    host-to-device copies (asynchronous) overlap the steps running on earlier batches. size 0: no lookahead."""
    if size < 0:
        raise ValueError(f"prefetch size must be >= 0, got {size}")
    batches = iter(batches)
    queue = collections.deque()
    while True:
        while len(queue) <= size:  # the batch to yield plus `size` ahead of it
            batch = next(batches, None)
            if batch is None:
                break
            queue.append(host_to_global(batch, mesh))
        if not queue:
            return
        yield queue.popleft()


def to_host(x) -> np.ndarray:
    """A global jax.Array -> numpy on every process (all-gathered when the array spans several processes)."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
