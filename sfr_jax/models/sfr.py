"""SFR-Net: CLIP towers with RS adapters + MEF head + GR graph refining (SPEC §3-§4).

Parameter names of the trainable parts, and the reference PyTorch names they map to:
    head.blocks.{i}.layer_norm.{scale,bias}  <->  mlp.{i}.layer_norm.{weight,bias}       (i = 0, 1)
    head.blocks.{i}.fc1.{kernel,bias}        <->  mlp.{i}.fc1.{weight (transposed),bias}
    head.blocks.{i}.fc2.{kernel,bias}        <->  mlp.{i}.fc2.{weight (transposed),bias}
    head.out.{kernel,bias}                   <->  mlp.2.{weight (transposed),bias}
    gcn.gc1.weight, gcn.gc2.weight           <->  gcn_corrector.gc1.weight, gcn_corrector.gc2.weight (same layout)
    clip.*                                   <->  clip_model.*  (see sfr_jax/convert/openai.py)
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfr_jax.models.clip import CLIP, CLIPConfig, Runtime
from sfr_jax.models.graph import ADJACENCY_THRESHOLD, GCN, adjacency as build_adjacency
from sfr_jax.models.rs import RSConfig, torch_linear_init


@dataclasses.dataclass(frozen=True)
class SFRConfig:
    """SFR-Net settings; rs / use_local / use_gr are the ablation switches of the paper's Table 3."""

    rs: RSConfig = RSConfig()
    use_local: bool = True  # MEF local evidence path (else S_initial = S_glb)
    use_gr: bool = True  # GR refining (else S_final = S_initial)
    head_hidden: int = 1024
    head_blocks: int = 2
    head_dropout: float = 0.1
    gcn_hidden: int = 64
    gcn_dropout: float = 0.5
    adjacency_threshold: float = ADJACENCY_THRESHOLD


class ClassTokens(nnx.Variable):
    """Token ids [C, L] int32 of the class descriptions: model state, never trained."""


class Adjacency(nnx.Variable):
    """The normalised GR adjacency A_hat [C, C] fp32: model state, never trained."""


# nnx filters. Only adapters, the MEF head and the GCN train; every other CLIP weight is frozen.
TRAINABLE = nnx.All(nnx.Param, nnx.Any(nnx.PathContains("adapter"), nnx.PathContains("head"),
                                       nnx.PathContains("gcn")))


def l2_normalize(x, axis: int = -1):
    """x / max(||x||, 1e-12), as torch's F.normalize."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class ResidualMLP(nnx.Module):
    """x + drop(fc2(drop(GELU(fc1(LayerNorm(x)))))), exact GELU, LayerNorm eps 1e-5 (as torch)."""

    def __init__(self, dim: int, hidden: int, dropout: float, *, rngs: nnx.Rngs):
        self.layer_norm = nnx.LayerNorm(dim, epsilon=1e-5, use_fast_variance=False, rngs=rngs)
        self.fc1 = nnx.Linear(dim, hidden, kernel_init=torch_linear_init(dim), bias_init=torch_linear_init(dim),
                              rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, kernel_init=torch_linear_init(hidden),
                              bias_init=torch_linear_init(hidden), rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x):
        h = self.dropout(jax.nn.gelu(self.fc1(self.layer_norm(x)), approximate=False))
        return x + self.dropout(self.fc2(h))


class MEFHead(nnx.Module):
    """The shared per-class scorer of evidence vectors: ResidualMLP x N, then Linear(dim -> 1)."""

    def __init__(self, dim: int, hidden: int = 1024, blocks: int = 2, dropout: float = 0.1, *, rngs: nnx.Rngs):
        self.blocks = nnx.List([ResidualMLP(dim, hidden, dropout, rngs=rngs) for _ in range(blocks)])
        self.out = nnx.Linear(dim, 1, kernel_init=torch_linear_init(dim), bias_init=torch_linear_init(dim),
                              rngs=rngs)

    def __call__(self, evidence):
        for block in self.blocks:
            evidence = block(evidence)
        return self.out(evidence)[..., 0]


class SFRNet(nnx.Module):
    """CLIP (+RS) -> MEF (global + local evidence scores) -> GR (GCN over the class graph) -> logits [B, c].

    `class_tokens` are the description token ids of the whole class set [C, L]; `adjacency` is the
    normalised [C, C] A_hat (kept as state), or None to compute it from `phrase_tokens` with the text
    encoder as it is now (the reference does this at start-up, adapters still zero).
    """

    def __init__(self, clip: CLIP, config: SFRConfig, class_tokens, adjacency=None, *, phrase_tokens=None,
                 rngs: nnx.Rngs):
        if clip.rs != config.rs:
            raise ValueError(f"the CLIP was built with {clip.rs} but the SFR config says {config.rs}")
        self.config = config
        self.clip = clip
        class_tokens = jnp.asarray(class_tokens, jnp.int32)
        if class_tokens.ndim != 2:
            raise ValueError(f"class_tokens must be [C, L] token ids, got shape {class_tokens.shape}")
        self.num_classes = int(class_tokens.shape[0])
        self.class_tokens = ClassTokens(class_tokens)
        dim = clip.config.projection_dim
        self.head = (MEFHead(dim, config.head_hidden, config.head_blocks, config.head_dropout, rngs=rngs)
                     if config.use_local else None)
        self.gcn = GCN(config.gcn_hidden, config.gcn_dropout, rngs=rngs) if config.use_gr else None
        if config.use_gr and adjacency is None:
            if phrase_tokens is None:
                raise ValueError("GR is on: pass the adjacency, or phrase_tokens to compute it from")
            adjacency = self.compute_adjacency(phrase_tokens)
        self.adjacency = Adjacency(self._check_adjacency(adjacency)) if config.use_gr else None

    def _check_adjacency(self, a):
        a = jnp.asarray(a, jnp.float32)
        if a.shape != (self.num_classes, self.num_classes):
            raise ValueError(f"adjacency has shape {a.shape}, expected {(self.num_classes,) * 2} for "
                             f"{self.num_classes} classes")
        return a

    def compute_adjacency(self, phrase_tokens):
        """A_hat from the explicit phrases' token ids [C, L] with the CURRENT text encoder (adapters included).

        Always without adapter dropout. (The reference runs this in train mode: harmless at start-up, where
        the adapters output zero, but it makes its recomputation for a trained model slightly random.)
        """
        clip = self.clip
        if any(isinstance(m, nnx.Dropout) for _, m in nnx.iter_modules(clip)):
            clip = nnx.view(clip, only=nnx.Dropout, deterministic=True)
        features = clip.encode_text(jnp.asarray(phrase_tokens, jnp.int32)).astype(jnp.float32)
        return build_adjacency(jax.lax.stop_gradient(features), self.config.adjacency_threshold)

    def refresh_adjacency(self, phrase_tokens):
        """Replace the stored adjacency by `compute_adjacency(phrase_tokens)` (the reference's evaluation quirk)."""
        self.adjacency.set_value(self._check_adjacency(self.compute_adjacency(phrase_tokens)))

    def text_features(self, class_ids):
        """l2-normalised text features [c, E] of the classes `class_ids` (a static tuple of ints)."""
        tokens = self.class_tokens[...][np.asarray(class_ids, dtype=np.int32)]
        return l2_normalize(self.clip.encode_text(tokens).astype(jnp.float32))

    def __call__(self, images, class_ids, text_features=None, *, with_maps: bool = False):
        """Logits [B, c] of NHWC images for the classes `class_ids`; `text_features` (from .text_features)
        saves re-encoding a fixed class set at every evaluation batch. with_maps (a Python bool, static under
        jit): (logits, W) with W [B, P, c] MEF's per-class softmax over the P patches (SPEC §3), computed
        even without the MEF head (then the plain-CLIP map); the logits are the same computation either way."""
        ids = np.asarray(class_ids, dtype=np.int32)
        if text_features is None:
            text_features = self.text_features(class_ids)
        t = l2_normalize(jnp.asarray(text_features, jnp.float32))
        tokens = self.clip.encode_image(images).astype(jnp.float32)
        g = l2_normalize(tokens[:, 0])
        scores = g @ t.T  # S_glb [B, c]
        weights = None
        if self.head is not None or with_maps:
            local = l2_normalize(tokens[:, 1:])  # [B, P, E]
            weights = jax.nn.softmax(jnp.einsum("bpe,ce->bpc", local, t), axis=1)  # over patches
        if self.head is not None:
            evidence = jnp.einsum("bpc,bpe->bce", weights, local)  # class-specific evidence [B, c, E]
            scores = scores + self.head(evidence)
        if self.gcn is not None:
            a = self.adjacency[...][np.ix_(ids, ids)]  # the mode's block, NOT renormalised
            scores = scores + self.gcn(scores, a)
        return (scores, weights) if with_maps else scores


def build_sfr(clip_config: CLIPConfig, config: SFRConfig, class_tokens, adjacency=None, *, phrase_tokens=None,
              image_size=None, runtime: Runtime = Runtime(), rngs: nnx.Rngs) -> SFRNet:
    """A fresh SFR-Net with a randomly initialised CLIP (load pretrained CLIP weights into `.clip` after)."""
    clip = CLIP(clip_config, config.rs, image_size=image_size, runtime=runtime, rngs=rngs)
    return SFRNet(clip, config, class_tokens, adjacency, phrase_tokens=phrase_tokens, rngs=rngs)


