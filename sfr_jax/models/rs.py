"""RS (Representation Steering) adapter: the only trainable part of SFR-Net's CLIP towers (SPEC §2)."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from flax import nnx


@dataclasses.dataclass(frozen=True)
class RSConfig:
    """Adapter settings: on/off, bottleneck width, dropout, and which block indices get one (None = all)."""

    enabled: bool = True
    bottleneck_dim: int = 128
    dropout: float = 0.1
    layers: Optional[Tuple[int, ...]] = None

    def applies_to(self, layer: int, num_layers: int) -> bool:
        """Whether block `layer` of a tower with `num_layers` blocks carries an adapter."""
        if not self.enabled:
            return False
        if self.layers is None or -1 in self.layers:  # -1 means "all", as in the reference's RS_LAYERS
            return True
        return layer in {i % num_layers if i < 0 else i for i in self.layers}


def torch_linear_init(fan_in: int):
    """PyTorch nn.Linear's default init for weight and bias: uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class RSAdapter(nnx.Module):
    """adapter(h) = up(dropout(GELU_erf(down(h)))); `up` starts at zero so the adapted tower equals the frozen one."""

    def __init__(self, dim: int, bottleneck_dim: int = 128, dropout: float = 0.1, *,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        init = torch_linear_init(dim)
        self.down = nnx.Linear(dim, bottleneck_dim, kernel_init=init, bias_init=init, dtype=dtype, rngs=rngs)
        self.up = nnx.Linear(bottleneck_dim, dim, kernel_init=nnx.initializers.zeros,
                             bias_init=nnx.initializers.zeros, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, h):
        return self.up(self.dropout(jax.nn.gelu(self.down(h), approximate=False)))

