"""Accelerator chips as their makers publish them, and the roofline estimate of a step on one.

The dry run compares a compiled step's memory with the chip's HBM and turns its FLOPs and HBM traffic into
an ESTIMATE of step time: the larger of (FLOPs / peak bf16 FLOP/s) and (bytes / HBM bandwidth). It leaves out
communication, input, launch overhead and every inefficiency, so a real step is slower
(benchmarks/README.md compares it with a measured H100 step).
"""
from __future__ import annotations

import dataclasses
import math

GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator chip: peak dense bf16 FLOP/s, HBM bytes and bytes/s, chips per host, where from."""

    name: str
    device_kinds: tuple  # jax Device.device_kind strings of this chip
    bf16_flops: float
    hbm_bytes: float
    hbm_bandwidth: float
    chips_per_host: int
    source: str


# Published per-chip figures (capacities given as "GB" are taken as GiB: the TPU compiler's limits match that,
# e.g. it offers 15.75 GiB of a v5e's 16 to a program).
CHIPS = (
    # https://cloud.google.com/tpu/docs/v4: 275 TFLOP/s bf16, HBM2 32 GiB at 1200 GB/s, 4 chips per host.
    Chip("v4", ("TPU v4",), 275e12, 32 * GIB, 1200e9, 4, "https://cloud.google.com/tpu/docs/v4"),
    # https://cloud.google.com/tpu/docs/v5e: 197 TFLOP/s bf16, HBM2 16 GB at 819 GB/s, 8 chips per host.
    Chip("v5e", ("TPU v5 lite", "TPU v5e"), 197e12, 16 * GIB, 819e9, 8, "https://cloud.google.com/tpu/docs/v5e"),
    # https://cloud.google.com/tpu/docs/v5p: 459 TFLOP/s bf16, HBM2e 95 GB at 2765 GB/s, 4 chips per host.
    Chip("v5p", ("TPU v5", "TPU v5p"), 459e12, 95 * GIB, 2765e9, 4, "https://cloud.google.com/tpu/docs/v5p"),
    # https://cloud.google.com/tpu/docs/v6e: 918 TFLOP/s bf16, 32 GB HBM at 1638 GB/s, 8 chips per host.
    Chip("v6e", ("TPU v6 lite", "TPU v6e"), 918e12, 32 * GIB, 1638e9, 8, "https://cloud.google.com/tpu/docs/v6e"),
    # https://www.nvidia.com/en-us/data-center/h100/ (SXM): 989 TFLOP/s dense bf16 (the datasheet's 1979 is
    # with sparsity), 80 GB HBM3 at 3.35 TB/s; 8 GPUs per HGX host.
    Chip("H100", ("NVIDIA H100 80GB HBM3", "NVIDIA H100"), 989e12, 80 * GIB, 3.35e12, 8,
         "https://www.nvidia.com/en-us/data-center/h100/"),
)


def by_name(name: str) -> Chip:
    """The chip called `name` (v4, v5e, v5p, v6e, H100)."""
    for chip in CHIPS:
        if chip.name.lower() == name.lower():
            return chip
    raise KeyError(f"no chip {name!r}; known: {', '.join(c.name for c in CHIPS)}")


def of_device(device) -> Chip | None:
    """The chip of a jax Device by its device_kind, or None when it is not in the catalogue (e.g. a CPU)."""
    kind = getattr(device, "device_kind", "")
    for chip in CHIPS:
        if kind in chip.device_kinds:
            return chip
    return None


def hosts(chip: Chip, chips: int) -> int:
    """Hosts of a slice of `chips` chips (a slice smaller than one host still has one)."""
    return max(1, math.ceil(chips / chip.chips_per_host))


@dataclasses.dataclass(frozen=True)
class Roofline:
    """A step-time estimate: the larger of its compute time at peak and its HBM traffic time at peak."""

    compute_s: float
    memory_s: float  # nan when the compiler gave no byte count

    @property
    def seconds(self) -> float:
        return self.compute_s if math.isnan(self.memory_s) else max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        if math.isnan(self.memory_s):
            return "compute (no HBM byte count)"
        return "compute" if self.compute_s >= self.memory_s else "HBM bandwidth"


def roofline(chip: Chip, flops_per_chip: float, bytes_per_chip: float = math.nan) -> Roofline:
    """The roofline estimate of one step that does `flops_per_chip` and moves `bytes_per_chip` on each chip."""
    return Roofline(flops_per_chip / chip.bf16_flops, bytes_per_chip / chip.hbm_bandwidth)
