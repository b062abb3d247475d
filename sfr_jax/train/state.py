"""Build SFR-Net from a config and split it: trainable leaves (adapters, MEF head, GCN) as a plain dict that
the optimiser owns, and everything else (frozen CLIP weights, class tokens, adjacency, RNG streams) as a
separate non-differentiated state that is never updated.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfr_jax.train import config as config_lib

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass
class ModelParts:
    """A split SFR-Net: graph definitions (train: dropout on; eval: off) and the two kinds of state."""

    train_def: Any
    eval_def: Any
    trainable: dict  # pure nested dict of arrays: what gets gradients and optimiser state
    frozen: Any  # nnx.State: frozen CLIP params, class tokens, adjacency, RNG streams
    class_set: Any
    tokenizer: Any
    phrase_tokens: np.ndarray

    def merge(self, trainable, frozen=None, *, train: bool = False):
        return nnx.merge(self.train_def if train else self.eval_def, trainable,
                         self.frozen if frozen is None else frozen)


def load_classes(config):
    """The class set of `config.data.class_set`, with user descriptions when given."""
    from sfr_jax.text.classes import load_class_set

    return load_class_set(config.data.class_set, descriptions=config.data.descriptions or None)


def sfr_config(config):
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.models.sfr import SFRConfig

    m = config.model
    rs = RSConfig(enabled=bool(m.rs), bottleneck_dim=m.bottleneck_dim, dropout=m.rs_dropout,
                  layers=config_lib.rs_layers(config))
    return SFRConfig(rs=rs, use_local=m.use_local, use_gr=m.use_gr, head_hidden=m.head_hidden,
                     head_dropout=m.head_dropout, gcn_hidden=m.gcn_hidden, gcn_dropout=m.gcn_dropout,
                     adjacency_threshold=m.adjacency_threshold)


def build(config) -> ModelParts:
    """SFR-Net on the converted CLIP of `config.clip_dir`; the adjacency is computed from the class phrases
    with the text encoder as it stands at start-up (adapters at init), as the reference does."""
    from sfr_jax.convert.store import load_clip
    from sfr_jax.models.sfr import TRAINABLE, SFRNet
    from sfr_jax.text.tokenizer import ClipTokenizer

    class_set = load_classes(config)
    sc = sfr_config(config)
    clip = load_clip(config.clip_dir, rs=sc.rs, image_size=config.data.image_size,
                     dtype=DTYPES[config.model.dtype], seed=config.seed,
                     attention_impl=config.model.attention_impl, remat=config.model.remat or None,
                     scan_layers={"auto": None, "on": True, "off": False}[config.model.scan_layers])  # (its error names convert-clip)
    tokenizer = ClipTokenizer.from_pretrained(config.clip_dir)
    class_tokens = tokenizer.encode(list(class_set.descriptions))
    phrase_tokens = tokenizer.encode(list(class_set.phrases))
    model = SFRNet(clip, sc, class_tokens, None, phrase_tokens=phrase_tokens,
                   rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1))
    model.eval()
    eval_def = nnx.graphdef(model)
    model.train()
    train_def, trainable, frozen = nnx.split(model, TRAINABLE, ...)
    return ModelParts(train_def, eval_def, nnx.to_pure_dict(trainable), frozen, class_set, tokenizer,
                      phrase_tokens)


def reseed(model, key) -> None:
    """Give every dropout stream its own key derived from `key` and the stream's path, so that no two
    dropout layers ever draw the same mask."""

    def policy(path, scalar_key, shape):
        del shape
        tag = zlib.crc32("/".join(str(p) for p in path).encode()) & 0x7FFFFFFF
        return jax.random.fold_in(scalar_key, tag)

    nnx.reseed(model, policy=policy, dropout=key)


def get_adjacency(frozen):
    """The A_hat stored in the frozen state, or None when GR is off."""
    return frozen["adjacency"].get_value() if "adjacency" in frozen else None


def set_adjacency(frozen, value) -> None:
    if value is not None and "adjacency" in frozen:
        frozen["adjacency"].set_value(jnp.asarray(value, jnp.float32))


def count(tree) -> int:
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))
