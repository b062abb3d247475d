"""The reference optimiser: AdamW with two learning rates, torch-style global-norm clipping, and the
per-epoch warm-up + cosine schedule of timm's CosineLRScheduler as the reference configures it (SPEC §6).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sfr_jax import config as config_lib

# The trainable tree's top-level key that holds CLIP's adapters; everything else is the MEF head / GCN.
CLIP_GROUP, HEAD_GROUP = "clip", "head"


def epoch_lr(base: float, t, *, warmup_epochs: int, warmup_init: float, min_lr: float, period: float):
    """Learning rate at (possibly fractional, possibly traced) epoch time t >= 0.

    timm CosineLRScheduler(t_initial=period, lr_min=min_lr, warmup_t=warmup_epochs, warmup_lr_init=warmup_init,
    cycle_limit=1, warmup_prefix=False): linear warm-up for t < warmup_epochs, then cosine on the SAME t
    (no prefix shift), and min_lr once the single cycle is over.
    """
    t = jnp.asarray(t, jnp.float32)
    if warmup_epochs > 0:
        warm = warmup_init + t * (base - warmup_init) / warmup_epochs
    else:
        warm = jnp.float32(base)
    cosine = min_lr + 0.5 * (base - min_lr) * (1.0 + jnp.cos(jnp.pi * t / period))
    after = jnp.where(t < period, cosine, min_lr)
    return jnp.where(t < warmup_epochs, warm, after)


SCHEDULE_KINDS = ("epoch", "step")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """The optimiser and its schedule (the run config's optim and schedule sections, SPEC §6)."""

    clip_lr: float
    head_lr: float
    weight_decay: float
    b1: float
    b2: float
    eps: float
    grad_clip: float  # global norm; <= 0 disables
    clip_scaled_like_reference: bool
    schedule_kind: str  # SCHEDULE_KINDS
    warmup_epochs: float
    warmup_init: float
    min_lr: float
    period_epochs: float

    @classmethod
    def from_config(cls, config) -> "OptimConfig":
        o, sc = config.optim, config.schedule
        config_lib.one_of("schedule.kind", sc.kind, SCHEDULE_KINDS)
        return cls(float(o.clip_lr), float(o.head_lr), float(o.weight_decay), float(o.b1), float(o.b2),
                   float(o.eps), float(o.grad_clip), bool(o.clip_scaled_like_reference), str(sc.kind),
                   sc.warmup_epochs, float(sc.warmup_init), float(sc.min_lr), sc.period_epochs)


def schedule(base: float, oc: OptimConfig, steps_per_epoch: int) -> Callable:
    """optax schedule: update count (0-based) -> lr. 'epoch' holds lr_e for every step of epoch e = 1, 2, ...
    (the reference calls scheduler.step(e) at the start of epoch e); 'step' moves t smoothly from 0."""
    kw = dict(warmup_epochs=oc.warmup_epochs, warmup_init=oc.warmup_init, min_lr=oc.min_lr, period=oc.period_epochs)
    if oc.schedule_kind == "epoch":
        return lambda count: epoch_lr(base, count // steps_per_epoch + 1, **kw)
    return lambda count: epoch_lr(base, count / steps_per_epoch, **kw)


def learning_rates(oc: OptimConfig, steps_per_epoch: int, step: int) -> dict:
    """Both groups' learning rates at a (0-based) step, for logging."""
    return {f"lr/{name}": float(schedule(base, oc, steps_per_epoch)(step))
            for name, base in ((CLIP_GROUP, oc.clip_lr), (HEAD_GROUP, oc.head_lr))}


class ClipState(NamedTuple):
    count: jax.Array


def torch_clip_by_global_norm(max_norm: float, loss_scale: Callable | None = None) -> optax.GradientTransformation:
    """torch.nn.utils.clip_grad_norm_: g * min(1, max_norm / (|g| + 1e-6)).

    With `loss_scale(count)` it clips as the reference does under AMP: its GradScaler-scaled gradients
    (g * S) are clipped BEFORE unscaling, so the effective limit on |g| is max_norm / S.
    """

    def init(params):
        del params
        return ClipState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None):
        del params
        norm = optax.global_norm(updates)
        scale = loss_scale(state.count) if loss_scale else 1.0
        factor = jnp.minimum(1.0, max_norm / (norm * scale + 1e-6))
        updates = jax.tree.map(lambda g: (g * factor).astype(g.dtype), updates)
        return updates, ClipState(state.count + 1)

    return optax.GradientTransformation(init, update)


def grad_scaler_scale(count):
    """torch.amp.GradScaler's default scale without overflows: 2**16, doubled every 2000 steps."""
    return jnp.ldexp(jnp.float32(1.0), (16 + count // 2000).astype(jnp.int32))  # exact powers of two


def param_labels(params):
    """'clip' for the adapters inside CLIP, 'head' for MEF head + GCN (the reference's two param groups)."""
    return {key: jax.tree.map(lambda _: CLIP_GROUP if key == CLIP_GROUP else HEAD_GROUP, sub)
            for key, sub in params.items()}


def make_optimizer(o: OptimConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """clip -> AdamW per group; weight decay on every trainable tensor, as torch.optim.AdamW does."""

    def adamw(base):
        return optax.adamw(schedule(base, o, steps_per_epoch), b1=o.b1, b2=o.b2, eps=o.eps,
                           weight_decay=o.weight_decay)

    parts = []
    if o.grad_clip > 0:
        parts.append(torch_clip_by_global_norm(o.grad_clip, grad_scaler_scale if o.clip_scaled_like_reference
                                               else None))
    parts.append(optax.multi_transform({CLIP_GROUP: adamw(o.clip_lr), HEAD_GROUP: adamw(o.head_lr)},
                                       param_labels))
    return optax.chain(*parts)

