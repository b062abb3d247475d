"""The jitted inference steps shared by evaluation, training's evaluations and the applications.

Images arrive as uint8 (4x fewer bytes from host to device than float32) and are normalised inside the
step. Text features of a fixed class set are computed once (`make_text_features`) and passed to every eval
step; all modes of an evaluation score a batch in one program, which shares the image encoding.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sfr_jax import parallel
from sfr_jax.infer.model import ModelParts


def normalise(images, mean, std):
    """uint8 images 0..255 -> float32 (x / 255 - mean) / std, per channel (the reference's ToTensor +
    Normalize); done on the device, fused by XLA into the patch embedding's input."""
    if images.dtype != jnp.uint8:
        raise TypeError(f"the steps take uint8 images (0..255) as the input pipelines yield, got {images.dtype}")
    scale = 1.0 / (255.0 * np.asarray(std, np.float32))
    return images.astype(jnp.float32) * scale - np.asarray(mean, np.float32) / np.asarray(std, np.float32)


def make_text_features(parts: ModelParts, mesh, shardings: dict):
    """jit(text_features)(trainable, frozen, class_ids static) -> [c, E], computed once per evaluation."""

    def text_features(trainable, frozen, class_ids):
        return parts.merge(trainable, frozen).text_features(class_ids)

    rep = parallel.replicated(mesh)
    return jax.jit(text_features, static_argnums=2, in_shardings=(shardings["trainable"], shardings["frozen"]),
                   out_shardings=rep)


def make_eval_step(parts: ModelParts, mesh, shardings: dict, modes: dict, mean, std):
    """jit(eval_step)(trainable, frozen, images uint8, text_features: {mode: [c,E]}) -> {mode: logits [B, c]}.

    `modes` maps a mode name to its static class ids. Logits come back sharded over 'data'. mean/std: the
    run's input normalisation (config.data).
    """
    modes = {name: tuple(ids) for name, ids in modes.items()}
    mean, std = tuple(mean), tuple(std)

    def eval_step(trainable, frozen, images, text_features):
        model = parts.merge(trainable, frozen)
        images = normalise(images, mean, std)
        return {name: model(images, ids, text_features=text_features[name]).astype(jnp.float32)
                for name, ids in modes.items()}

    rep = parallel.replicated(mesh)
    batch_sh = parallel.batch_sharding(mesh)
    return jax.jit(eval_step, in_shardings=(shardings["trainable"], shardings["frozen"], batch_sh, rep),
                   out_shardings=batch_sh)


def maps_to_grid(weights):
    """MEF's affinities W [B, P, c] -> heatmaps [B, c, g, g] (square images: P = g * g patches, row-major)."""
    b, p, c = weights.shape
    g = int(round(p ** 0.5))
    if g * g != p:
        raise ValueError(f"{p} patches do not form a square grid")
    return jnp.transpose(weights, (0, 2, 1)).reshape(b, c, g, g)


def make_maps_step(parts: ModelParts, mesh, shardings: dict, class_ids, mean, std):
    """jit(maps_step)(trainable, frozen, images uint8, text_features [c,E]) -> (logits [B, c], maps [B, c, g, g]).

    A separate program from make_eval_step, so asking for heatmaps never changes the step that does not."""
    ids = tuple(class_ids)
    mean, std = tuple(mean), tuple(std)

    def maps_step(trainable, frozen, images, text_features):
        model = parts.merge(trainable, frozen)
        logits, weights = model(normalise(images, mean, std), ids, text_features=text_features, with_maps=True)
        return logits.astype(jnp.float32), maps_to_grid(weights.astype(jnp.float32))

    rep = parallel.replicated(mesh)
    batch_sh = parallel.batch_sharding(mesh)
    return jax.jit(maps_step, in_shardings=(shardings["trainable"], shardings["frozen"], batch_sh, rep),
                   out_shardings=(batch_sh, batch_sh))
