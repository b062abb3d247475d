"""SFR-Net built from a run config and split in two: the trainable leaves (adapters, MEF head, GCN) as a plain
dict that an optimiser can own, and everything else (frozen CLIP weights, class tokens, adjacency, RNG
streams) as a separate state that is never differentiated nor updated.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfr_jax import config as config_lib
from sfr_jax.errors import ConfigError
from sfr_jax.models import store
from sfr_jax.models.clip import ATTENTION_IMPLS, PRESETS, REMAT_POLICIES, CLIPConfig, Runtime
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.sfr import TRAINABLE, Adjacency, ClassTokens, SFRConfig, SFRNet, build_sfr
from sfr_jax.models.store import load_clip
from sfr_jax.text.classes import ClassSet, load_class_set
from sfr_jax.text.tokenizer import ClipTokenizer

log = logging.getLogger("sfr_jax")

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
SCAN_LAYERS = {"auto": None, "on": True, "off": False}


@dataclasses.dataclass
class ModelParts:
    """A split SFR-Net: graph definitions (train: dropout on; eval: off) and the two kinds of state."""

    train_def: Any
    eval_def: Any
    trainable: dict  # pure nested dict of arrays: what gets gradients and optimiser state
    frozen: Any  # nnx.State: frozen CLIP params, class tokens, adjacency, RNG streams
    class_set: ClassSet
    tokenizer: Any
    phrase_tokens: np.ndarray

    def merge(self, trainable, frozen=None, *, train: bool = False) -> SFRNet:
        return nnx.merge(self.train_def if train else self.eval_def, trainable,
                         self.frozen if frozen is None else frozen)


@dataclasses.dataclass
class LoadedModel:
    """A ready-to-run SFR-Net (eval mode) and what goes with it: its classes, tokenizer and input contract."""

    model: SFRNet
    class_set: ClassSet
    tokenizer: Any
    image_size: int
    mean: tuple
    std: tuple
    provenance: dict
    calibration: dict | None = None  # the calibration record of this model (sfr_jax.eval.calibration_record)


def parse_rs_layers(text: str) -> tuple[int, ...] | None:
    """`model.rs_layers` as a tuple of layer indices, or None for all layers ('')."""
    text = str(text).strip()
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"config value model.rs_layers={text!r}: expected comma-separated integers") from None


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything that builds SFR-Net, typed and checked once from a run config (ModelSpec.from_config):
    where the CLIP and the classes come from, the input contract, the model's switches and sizes (SFRConfig)
    and how it computes (Runtime)."""

    clip_dir: str
    clip_preset: str  # '' or a PRESETS name: the CLIP's shape when clip_dir holds no converted CLIP
    class_set: str
    descriptions: str
    image_size: int
    mean: tuple
    std: tuple
    seed: int
    sfr: SFRConfig
    runtime: Runtime

    @classmethod
    def from_config(cls, config) -> "ModelSpec":
        """The model part of a run config; a value that cannot work is a ConfigError naming its key."""
        m = config.model
        config_lib.one_of("model.dtype", m.dtype, tuple(DTYPES))
        config_lib.one_of("model.attention_impl", m.attention_impl, ATTENTION_IMPLS)
        config_lib.one_of("model.remat", m.remat, tuple(name or "" for name in REMAT_POLICIES))
        config_lib.one_of("model.scan_layers", m.scan_layers, tuple(SCAN_LAYERS))
        if m.clip_preset and m.clip_preset not in PRESETS:
            raise ConfigError(f"config value model.clip_preset={m.clip_preset!r} is not a CLIP preset; use '' or "
                              f"one of {', '.join(PRESETS)}")
        rs = RSConfig(enabled=bool(m.rs), bottleneck_dim=m.bottleneck_dim, dropout=m.rs_dropout,
                      layers=parse_rs_layers(m.rs_layers))
        sfr = SFRConfig(rs=rs, use_local=m.use_local, use_gr=m.use_gr, head_hidden=m.head_hidden,
                        head_dropout=m.head_dropout, gcn_hidden=m.gcn_hidden, gcn_dropout=m.gcn_dropout,
                        adjacency_threshold=m.adjacency_threshold)
        run = Runtime(dtype=DTYPES[m.dtype], attention_impl=m.attention_impl, remat=m.remat or None,
                      scan_layers=SCAN_LAYERS[m.scan_layers])
        d = config.data
        return cls(str(config.clip_dir), str(m.clip_preset), str(d.class_set), str(d.descriptions or ""),
                   int(d.image_size), tuple(d.mean), tuple(d.std), int(config.seed), sfr, run)

    def load_classes(self) -> ClassSet:
        """The class set named by data.class_set, with the user's descriptions when given."""
        return load_class_set(self.class_set, descriptions=self.descriptions or None)

    def check_rs_layers(self, clip_config: CLIPConfig) -> None:
        """Every index of model.rs_layers must name a block of at least one tower (else no adapter is added)."""
        layers = self.sfr.rs.layers
        if not self.sfr.rs.enabled or layers is None or -1 in layers:
            return
        depths = (clip_config.vision.num_hidden_layers, clip_config.text.num_hidden_layers)
        outside = [i for i in layers if not any(-n <= i < n for n in depths)]
        if outside:
            text = ",".join(str(i) for i in layers)
            raise ConfigError(f"config value model.rs_layers={text!r}: layer(s) {outside} outside the CLIP's "
                              f"{depths[0]} vision and {depths[1]} text blocks (indices 0..{max(depths) - 1}, "
                              "negative from the end, -1 for all)")

    def has_converted_clip(self) -> bool:
        """Whether clip_dir holds a converted CLIP's config (what `sfr-jax convert-clip` writes)."""
        return bool(self.clip_dir) and os.path.isfile(os.path.join(self.clip_dir, store.CONFIG_FILE))

    def clip_architecture(self) -> tuple[CLIPConfig, str]:
        """(the CLIP's shape, where it came from): the converted CLIP in clip_dir when there is one, else
        clip_preset. Reads no weights."""
        if self.has_converted_clip():  # (the preset then plays no part: set clip_dir='' to dry-run it)
            return (CLIPConfig.from_hf(os.path.join(self.clip_dir, store.CONFIG_FILE)),
                    f"converted CLIP {self.clip_dir}")
        if not self.clip_preset:
            raise ConfigError(f"clip_dir={self.clip_dir!r} holds no converted CLIP and model.clip_preset is '': "
                              "convert one (`sfr-jax convert-clip`) or set model.clip_preset to one of "
                              f"{', '.join(PRESETS)}")
        where = f"clip_dir={self.clip_dir!r} holds none" if self.clip_dir else "clip_dir unset"
        return CLIPConfig.preset(self.clip_preset), f"preset {self.clip_preset} ({where})"

    def tokenizer(self):
        """The tokenizer of the converted CLIP in clip_dir, or OpenAI's vocabulary when there is none."""
        if self.has_converted_clip():
            return ClipTokenizer.from_pretrained(self.clip_dir)
        return ClipTokenizer.default()


def _split(model: SFRNet, class_set, tokenizer, phrase_tokens) -> ModelParts:
    model.eval()
    eval_def = nnx.graphdef(model)
    model.train()
    train_def, trainable, frozen = nnx.split(model, TRAINABLE, ...)
    return ModelParts(train_def, eval_def, nnx.to_pure_dict(trainable), frozen, class_set, tokenizer,
                      phrase_tokens)


def build_parts(spec: ModelSpec) -> ModelParts:
    """SFR-Net on the converted CLIP of `spec.clip_dir`; the adjacency is computed from the class phrases
    with the text encoder as it stands at start-up (adapters at init), as the reference does."""
    class_set = spec.load_classes()
    clip = load_clip(spec.clip_dir, rs=spec.sfr.rs, image_size=spec.image_size, runtime=spec.runtime,
                     seed=spec.seed)  # (its error names convert-clip)
    spec.check_rs_layers(clip.config)
    tokenizer = ClipTokenizer.from_pretrained(spec.clip_dir)
    class_tokens = tokenizer.encode(list(class_set.descriptions))
    phrase_tokens = tokenizer.encode(list(class_set.phrases))
    model = SFRNet(clip, spec.sfr, class_tokens, None, phrase_tokens=phrase_tokens,
                   rngs=nnx.Rngs(params=spec.seed, dropout=spec.seed + 1))
    return _split(model, class_set, tokenizer, phrase_tokens)


def abstract_parts(spec: ModelSpec) -> ModelParts:
    """build_parts's split model with jax.ShapeDtypeStruct leaves (nnx.eval_shape): no weights are read or
    materialised, so a ViT-L/14@336 can be compiled for a pod on a laptop. The CLIP's shape comes from
    spec.clip_architecture (clip_dir's config, else model.clip_preset)."""
    class_set = spec.load_classes()
    clip_config, source = spec.clip_architecture()
    log.info("model: %s", source)
    spec.check_rs_layers(clip_config)
    tokenizer = spec.tokenizer()
    class_tokens = tokenizer.encode(list(class_set.descriptions))
    phrase_tokens = tokenizer.encode(list(class_set.phrases))
    model = nnx.eval_shape(lambda: build_sfr(
        clip_config, spec.sfr, class_tokens, phrase_tokens=phrase_tokens, image_size=spec.image_size,
        runtime=spec.runtime, rngs=nnx.Rngs(params=spec.seed, dropout=spec.seed + 1)))
    return _split(model, class_set, tokenizer, phrase_tokens)


def get_adjacency(frozen):
    """The A_hat stored in the frozen state, or None when GR is off."""
    return frozen["adjacency"].get_value() if "adjacency" in frozen else None


def set_adjacency(frozen, value) -> None:
    """Replace the A_hat of the frozen state (no-op when GR is off or value is None)."""
    if value is not None and "adjacency" in frozen:
        frozen["adjacency"].set_value(jnp.asarray(value, jnp.float32))


def count(tree) -> int:
    """Number of scalars in a tree of arrays."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))


def with_classes(model: SFRNet, tokenizer, class_set: ClassSet) -> SFRNet:
    """A view of `model` holding other classes: their descriptions become the class prompts and GR's
    adjacency is rebuilt from their phrases with the trained text encoder. The weights are shared; `model`
    itself is left as it was."""
    graphdef, buffers, rest = nnx.split(model, nnx.Any(ClassTokens, Adjacency), ...)
    view = nnx.merge(graphdef, jax.tree.map(lambda x: x, buffers), rest)  # fresh buffer variables only
    view.class_tokens.set_value(np.asarray(tokenizer.encode(list(class_set.descriptions)), np.int32))
    view.num_classes = class_set.num_classes
    if view.adjacency is not None:
        phrases = tokenizer.encode(list(class_set.phrases))
        view.adjacency.set_value(np.asarray(view.compute_adjacency(phrases), np.float32))
    return view


def use_classes(loaded: LoadedModel, class_set: ClassSet) -> None:
    """Score a user's own classes with a loaded model (see with_classes)."""
    loaded.model = with_classes(loaded.model, loaded.tokenizer, class_set)
    loaded.class_set = class_set
