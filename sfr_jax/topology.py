"""The devices of a TPU slice that is not here, to compile for ahead of time (`train --dry-run --topology`).

libtpu describes any slice (`jax.experimental.topologies`), so a CPU machine can compile the real step for
a v5e-256 and read its memory needs. libtpu is the optional extra `pip install -e .[tpu-aot]` and is only
loaded when a topology is asked for.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import re

from sfr_jax.errors import ConfigError, MissingInput

# Slice shapes of the Cloud TPU accelerator types (v5e-64, v5p-128, ...), by chip count.
_SHAPES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}
_SHAPES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8",
              512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16"}
# generation -> (its shapes, TensorCores counted per chip in the accelerator type's number)
_GENERATIONS = {"v4": (_SHAPES_3D, 2), "v5p": (_SHAPES_3D, 2), "v5e": (_SHAPES_2D, 1),
                "v5litepod": (_SHAPES_2D, 1), "v6e": (_SHAPES_2D, 1)}
_LIBTPU_NAME = re.compile(r"^(v4|v5p|v5|v5e|v6e):\d+(x\d+){1,2}$")
_ACCELERATOR_TYPE = re.compile(r"^(v4|v5p|v5e|v5litepod|v6e)-(\d+)$")


def libtpu_name(name: str) -> str:
    """A topology as libtpu spells it ('v5e:2x4', 'v4:2x2x1'), also from a Cloud TPU accelerator type
    ('v5e-8', 'v5litepod-8', 'v6e-64', 'v5p-128' and 'v4-8' count TensorCores, two per chip)."""
    name = name.strip().lower()
    if _LIBTPU_NAME.match(name):
        return name
    match = _ACCELERATOR_TYPE.match(name)
    if match:
        generation, count = match.group(1), int(match.group(2))
        shapes, cores = _GENERATIONS[generation]
        chips = count // cores
        if count % cores == 0 and chips in shapes:
            return f"{'v5e' if generation == 'v5litepod' else generation}:{shapes[chips]}"
    raise ConfigError(f"--topology {name!r} is not a TPU topology: use libtpu's spelling (v5e:2x2, v5e:16x16, "
                      "v4:2x2x1, v5p:4x4x4, v6e:8x8) or an accelerator type (v5e-8, v5p-128, v6e-64)")


def libtpu_available() -> bool:
    """Whether the libtpu package (the `tpu-aot` extra) is installed; nothing is imported."""
    return importlib.util.find_spec("libtpu") is not None


def leave_out_absent_tpu() -> None:
    """With libtpu installed on a machine without TPU chips (the tpu-aot extra on a laptop or GPU-less host),
    JAX's start-up tries the TPU and prints libtpu's warnings in every command: there, unless JAX_PLATFORMS
    is set or a CUDA plugin is installed, JAX is limited to the CPU. Compiling for a --topology still works."""
    if os.environ.get("JAX_PLATFORMS") or not libtpu_available():
        return
    if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"):  # TPU VMs expose their chips here
        return
    if any(importlib.util.find_spec(name) for name in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
        return
    os.environ["JAX_PLATFORMS"] = "cpu"


def devices(name: str) -> list:
    """The devices of topology `name` (not addressable: compile for them, never run). MissingInput when
    libtpu is not installed, ConfigError when it cannot describe `name`."""
    spelled = libtpu_name(name)
    if not libtpu_available():
        raise MissingInput(f"--topology {name} needs libtpu to describe TPU slices: `pip install -e .[tpu-aot]` "
                           "(the libtpu version pinned by jax)")
    # Compiling uses no chip, so libtpu's one-process-per-chip lock (held by any other jax process that loaded
    # it on this machine) does not apply.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies  # loads libtpu

    # v4 and v5p chips hold two TensorCores that JAX drives as one device ('megacore'), as on a real slice.
    config = "megacore" if spelled.split(":")[0] in ("v4", "v5p", "v5") else "default"
    try:
        return list(topologies.get_topology_desc(topology_name=spelled, platform="tpu",
                                                 chip_config_name=config).devices)
    except Exception as error:  # libtpu's own words, e.g. an impossible shape
        raise ConfigError(f"--topology {name}: libtpu cannot describe {spelled!r} "
                          f"({str(error).strip().splitlines()[0][:300]})") from None
