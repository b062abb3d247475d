"""The jitted train step: a pure function of (trainable, optimiser state, frozen state, batch, step, key).

Gradients are taken with respect to the trainable dict only; the frozen CLIP weights are a separate
argument, so XLA never computes their weight gradients nor keeps optimiser state for them. Dropout keys
depend on (seed, step) only and masks are drawn for the GLOBAL batch, so 1 and N devices draw the same.
Images arrive as uint8 and are normalised inside the step (sfr_jax.infer.steps.normalise).
"""
from __future__ import annotations

import dataclasses

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from sfr_jax import parallel
from sfr_jax.infer.model import ModelParts
from sfr_jax.infer.steps import normalise
from sfr_jax.train.loss import scl_loss


def reseed(model, key) -> None:
    """Give every dropout stream its own key derived from `key` and the stream's path, so that no two
    dropout layers ever draw the same mask."""

    def policy(path, scalar_key, shape):
        del shape
        tag = zlib.crc32("/".join(str(p) for p in path).encode()) & 0x7FFFFFFF
        return jax.random.fold_in(scalar_key, tag)

    nnx.reseed(model, policy=policy, dropout=key)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """SCL's settings (SPEC §5) and the size of the groups it is computed over (the run config's loss section)."""

    temperature: float
    margin: float
    gamma: float
    group_size: int  # 0: one group, the whole batch

    @classmethod
    def from_config(cls, config) -> "LossConfig":
        c = config.loss
        return cls(float(c.temperature), float(c.margin), float(c.gamma), int(c.group_size))


def grouped_loss(logits, labels, loss_config: LossConfig, group_size: int):
    """Mean SCL loss over consecutive groups of `group_size` examples (the reference's per-GPU batches,
    whose gradients DDP averages); group_size 0 = one group."""
    b = logits.shape[0]
    g = group_size or b
    one = lambda lo, la: scl_loss(lo, la, temperature=loss_config.temperature, margin=loss_config.margin,
                                  gamma=loss_config.gamma)
    return jnp.mean(jax.vmap(one)(logits.reshape(b // g, g, -1), labels.reshape(b // g, g, -1)))


def make_train_step(parts: ModelParts, tx: optax.GradientTransformation, loss_config: LossConfig,
                    normalization: tuple, mesh, shardings: dict):
    """jit(train_step)(trainable, opt_state, frozen, batch, step, key) -> (trainable, opt_state, metrics).

    `normalization` is the input's (mean, std); `shardings` has 'trainable', 'opt_state', 'frozen' (trees
    or prefixes); batches are P('data'). trainable and opt_state are donated.
    """
    train_ids = tuple(parts.class_set.seen_ids)
    ids = np.asarray(train_ids, np.int32)
    group = loss_config.group_size
    mean, std = (tuple(x) for x in normalization)

    def train_step(trainable, opt_state, frozen, batch, step, key):
        dropout_key = jax.random.fold_in(key, step)

        def loss_fn(params):
            # Fresh Variables at this trace level: reseeding mutates the RNG streams.
            model = parts.merge(params, jax.tree.map(lambda x: x, frozen), train=True)
            reseed(model, dropout_key)
            # Seen classes' text features are recomputed here: the text adapters train.
            logits = model(normalise(batch["image"], mean, std), train_ids).astype(jnp.float32)
            labels = batch["labels"][:, ids].astype(jnp.float32)
            return grouped_loss(logits, labels, loss_config, group)

        loss, grads = jax.value_and_grad(loss_fn)(trainable)
        updates, opt_state = tx.update(grads, opt_state, trainable)
        trainable = optax.apply_updates(trainable, updates)
        return trainable, opt_state, {"loss": loss, "grad_norm": optax.global_norm(grads)}

    rep = parallel.replicated(mesh)
    batch_sh = parallel.batch_sharding(mesh)
    return jax.jit(
        train_step,
        in_shardings=(shardings["trainable"], shardings["opt_state"], shardings["frozen"],
                      {"image": batch_sh, "labels": batch_sh}, rep, rep),
        out_shardings=(shardings["trainable"], shardings["opt_state"], rep),
        donate_argnums=(0, 1),
    )

