"""CLIP vision and text towers in Flax NNX, with Hugging Face parameter names and optional RS adapters.

The image encoder returns ALL 1+P tokens after post_layernorm and the projection (SPEC §1); the text
encoder pools at argmax(token ids), the end-of-text position, as OpenAI's CLIP does.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from functools import lru_cache
from typing import Any, Mapping, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfr_jax.errors import InputError, MissingInput
from sfr_jax.models.rs import RSAdapter, RSConfig

_ACTIVATIONS = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
}
# 'auto': cuDNN's fused kernel for bf16/fp16 on NVIDIA GPUs (faster there than XLA's attention, see
# benchmarks/README.md), else 'einsum'.
ATTENTION_IMPLS = ("einsum", "xla", "cudnn", "auto")
# Rematerialisation of each encoder block in the backward pass: None (keep activations), 'block' (keep
# only each block's input), 'dots' (keep the outputs of weight matmuls, recompute the rest).
REMAT_POLICIES = {None: None, "block": None, "dots": "dots_with_no_batch_dims_saveable"}


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How the towers compute, never what: the activation dtype (parameters, LayerNorm statistics and
    softmax stay fp32), the attention kernel, per-block rematerialisation and the layer scan (None: scan on
    the CPU backend in train mode only). Handed down unchanged to every block."""

    dtype: Any = jnp.float32
    attention_impl: str = "auto"
    remat: Optional[str] = None
    scan_layers: Optional[bool] = None

    def __post_init__(self):
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl {self.attention_impl!r} not in {ATTENTION_IMPLS}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat {self.remat!r} not in {tuple(REMAT_POLICIES)}")


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """Vision tower shape, as in Hugging Face's CLIPVisionConfig."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    image_size: int
    patch_size: int
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """Text tower shape, as in Hugging Face's CLIPTextConfig."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int = 49408
    max_position_embeddings: int = 77
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"


# transformers' CLIPVisionConfig / CLIPTextConfig defaults (HF config.json files leave these out)
_HF_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, layer_norm_eps=1e-5, hidden_act="quick_gelu")
_HF_TEXT_DEFAULTS = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                         vocab_size=49408, max_position_embeddings=77, layer_norm_eps=1e-5, hidden_act="quick_gelu")


def _sub(cls, d: Mapping[str, Any]):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
    """Both towers plus the joint embedding width; reads and writes Hugging Face config.json dictionaries."""

    vision: VisionConfig
    text: TextConfig
    projection_dim: int = 512

    @classmethod
    def from_hf(cls, path_or_dict: Union[str, os.PathLike, Mapping[str, Any]]) -> "CLIPConfig":
        """From a Hugging Face CLIP config: a dict, a config.json file, or a folder holding one."""
        if isinstance(path_or_dict, Mapping):
            d = dict(path_or_dict)
        else:
            path = os.fspath(path_or_dict)
            if os.path.isdir(path):
                path = os.path.join(path, "config.json")
            if not os.path.isfile(path):
                raise MissingInput(f"CLIP config not found: {path}")
            with open(path) as f:
                d = json.load(f)
        for key in ("vision_config", "text_config"):  # very old HF configs used *_config_dict
            if key not in d and f"{key}_dict" in d:
                d[key] = d[f"{key}_dict"]
            if key not in d:
                raise InputError(f"not a CLIP config (no {key!r}): keys {sorted(d)}")
        # HF's config.json files omit values equal to transformers' defaults: fill those in
        vision = {**_HF_VISION_DEFAULTS, **d["vision_config"]}
        text = {**_HF_TEXT_DEFAULTS, **d["text_config"]}
        return cls(_sub(VisionConfig, vision), _sub(TextConfig, text), int(d.get("projection_dim", 512)))

    def to_hf_dict(self) -> dict:
        """A Hugging Face CLIPModel config dictionary (loadable with transformers.CLIPConfig.from_dict)."""
        vision = dataclasses.asdict(self.vision)
        text = dataclasses.asdict(self.text)
        vision.update(num_channels=3, projection_dim=self.projection_dim)
        text.update(projection_dim=self.projection_dim, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
        return {"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": self.projection_dim,
                "logit_scale_init_value": 2.6592, "vision_config": vision, "text_config": text}

    @classmethod
    def preset(cls, name: str) -> "CLIPConfig":
        """One of PRESETS by name."""
        if name not in PRESETS:
            raise ValueError(f"unknown CLIP preset {name!r}; known: {', '.join(PRESETS)}")
        return getattr(cls, name)()

    # Presets of OpenAI's released ViT CLIPs.
    @classmethod
    def vit_b16(cls) -> "CLIPConfig":
        return cls(VisionConfig(768, 3072, 12, 12, 224, 16), TextConfig(512, 2048, 12, 8), 512)

    @classmethod
    def vit_b32(cls) -> "CLIPConfig":
        return cls(VisionConfig(768, 3072, 12, 12, 224, 32), TextConfig(512, 2048, 12, 8), 512)

    @classmethod
    def vit_l14(cls) -> "CLIPConfig":
        return cls(VisionConfig(1024, 4096, 24, 16, 224, 14), TextConfig(768, 3072, 12, 12), 768)

    @classmethod
    def vit_l14_336(cls) -> "CLIPConfig":
        return cls(VisionConfig(1024, 4096, 24, 16, 336, 14), TextConfig(768, 3072, 12, 12), 768)

    @classmethod
    def tiny(cls) -> "CLIPConfig":
        """A miniature for tests and the demo (2 layers, width 64, 32-pixel images, full BPE vocabulary)."""
        return cls(VisionConfig(64, 128, 2, 4, 32, 8), TextConfig(64, 128, 2, 4), 32)


# The CLIPConfig class methods of OpenAI's released ViT CLIPs (model.clip_preset of a run config).
PRESETS = ("vit_b16", "vit_b32", "vit_l14", "vit_l14_336")


@lru_cache(maxsize=64)
def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of torch's bicubic resize (a=-0.75, align_corners=False, no antialias, clamped edges)."""
    a = -0.75
    scale = in_size / out_size
    w = np.zeros((out_size, in_size), np.float64)
    for o in range(out_size):
        src = (o + 0.5) * scale - 0.5  # torch does not clamp the source index for cubic
        i0 = math.floor(src)
        t = src - i0
        coeffs = (
            ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
        )
        for k, c in enumerate(coeffs):
            w[o, min(max(i0 - 1 + k, 0), in_size - 1)] += c
    return w.astype(np.float32)


def interpolate_position_embedding(table: jax.Array, grid_h: int, grid_w: int) -> jax.Array:
    """Resize a [1+G*G, D] position table to a grid_h x grid_w patch grid, keeping the class row."""
    n = table.shape[0] - 1
    g = int(round(math.sqrt(n)))
    if g * g != n:
        raise ValueError(f"position table has {n} patch rows, not a square grid")
    if (grid_h, grid_w) == (g, g):
        return table
    grid = table[1:].reshape(g, g, -1)
    wy = jnp.asarray(bicubic_matrix(g, grid_h))
    wx = jnp.asarray(bicubic_matrix(g, grid_w))
    hp = jax.lax.Precision.HIGHEST
    out = jnp.einsum("yi,ijd->yjd", wy, grid, precision=hp)
    out = jnp.einsum("xj,yjd->yxd", wx, out, precision=hp)
    return jnp.concatenate([table[:1], out.reshape(grid_h * grid_w, -1)], axis=0)


def _layer_norm(dim: int, eps: float, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # fp32 statistics whatever the compute dtype; the two-pass variance matches PyTorch's.
    return nnx.LayerNorm(dim, epsilon=eps, dtype=jnp.float32, use_fast_variance=False, rngs=rngs)


def _on_nvidia_gpu() -> bool:
    return jax.default_backend() == "gpu" and "nvidia" in jax.devices()[0].device_kind.lower()


def fused_attention(q, k, v, causal: bool, implementation: str, multiple: int = 1):
    """jax.nn.dot_product_attention on [B, T, H, D], the length padded to `multiple` (padding masked out
    through the sequence lengths, and cut off again)."""
    b, n = q.shape[:2]
    pad = -n % multiple
    if not pad:
        return jax.nn.dot_product_attention(q, k, v, is_causal=causal, implementation=implementation)
    q, k, v = (jnp.pad(a, ((0, 0), (0, pad), (0, 0), (0, 0))) for a in (q, k, v))
    lengths = jnp.full((b,), n, jnp.int32)
    out = jax.nn.dot_product_attention(q, k, v, is_causal=causal, query_seq_lengths=lengths,
                                       key_value_seq_lengths=lengths, implementation=implementation)
    return out[:, :n]


class Attention(nnx.Module):
    """Multi-head self-attention with separate q/k/v projections (HF layout); softmax in fp32."""

    def __init__(self, dim: int, heads: int, runtime: Runtime, *, rngs: nnx.Rngs):
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.attention_impl = runtime.attention_impl
        self.deterministic = False  # set by Module.eval(): evaluation uses the form with the fastest forward
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nnx.Linear(dim, dim, dtype=runtime.dtype, rngs=rngs))

    def __call__(self, x, causal: bool = False):
        b, n, d = x.shape
        h = self.heads
        q = self.q_proj(x).reshape(b, n, h, d // h)
        k = self.k_proj(x).reshape(b, n, h, d // h)
        v = self.v_proj(x).reshape(b, n, h, d // h)
        impl = self.attention_impl
        if impl == "auto":
            impl = "cudnn" if q.dtype in (jnp.bfloat16, jnp.float16) and _on_nvidia_gpu() else "einsum"
        if impl == "einsum":
            # Head-major [B,H,T,D] operands and the scale on q (T*D values, not T*T): XLA:CPU runs this much
            # faster than einsums over [B,T,H,D] (benchmarks/README.md).
            q, k, v = (jnp.swapaxes(a, 1, 2) for a in (q, k, v))
            logits = jnp.einsum("bhqd,bhkd->bhqk", q * (d // h) ** -0.5, k).astype(jnp.float32)
            if causal:
                mask = jnp.tril(jnp.ones((n, n), bool))
                logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
            if self.deterministic:
                # Normalised after the second matmul (T*D divisions, not T*T): faster evaluation on CPU, but
                # slower to differentiate, so training keeps the softmax (benchmarks/README.md).
                e = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
                out = jnp.einsum("bhqk,bhkd->bhqd", e.astype(v.dtype), v).astype(jnp.float32)
                out = (out / jnp.sum(e, axis=-1, keepdims=True)).astype(v.dtype)
            else:
                weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
                out = jnp.einsum("bhqk,bhkd->bhqd", weights, v)
            out = jnp.swapaxes(out, 1, 2)
        else:
            # cuDNN's fused kernel rejects odd lengths (ViT: 1 + 14*14 = 197): pad to a multiple of 8, masked.
            out = fused_attention(q, k, v, causal, impl, multiple=8 if impl == "cudnn" else 1)
        return self.out_proj(out.reshape(b, n, d))


class MLP(nnx.Module):
    """fc1 -> activation -> fc2."""

    def __init__(self, dim: int, hidden: int, act: str, runtime: Runtime, *, rngs: nnx.Rngs):
        if act not in _ACTIVATIONS:
            raise ValueError(f"unknown hidden_act {act!r}; known: {sorted(_ACTIVATIONS)}")
        self.act = act
        self.fc1 = nnx.Linear(dim, hidden, dtype=runtime.dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, dtype=runtime.dtype, rngs=rngs)

    def __call__(self, x):
        return self.fc2(_ACTIVATIONS[self.act](self.fc1(x)))


class EncoderLayer(nnx.Module):
    """Pre-LN block; with an adapter: x += attn(ln1 x); h = ln2 x; x += mlp(h) + adapter(h) (SPEC §2)."""

    def __init__(self, cfg: Union[VisionConfig, TextConfig], adapter: bool, rs: RSConfig, runtime: Runtime, *,
                 rngs: nnx.Rngs):
        d = cfg.hidden_size
        self.dtype = runtime.dtype
        self.self_attn = Attention(d, cfg.num_attention_heads, runtime, rngs=rngs)
        self.layer_norm1 = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.mlp = MLP(d, cfg.intermediate_size, cfg.hidden_act, runtime, rngs=rngs)
        self.layer_norm2 = _layer_norm(d, cfg.layer_norm_eps, rngs)
        self.adapter = (RSAdapter(d, rs.bottleneck_dim, rs.dropout, dtype=runtime.dtype, rngs=rngs)
                        if adapter else None)

    def __call__(self, x, causal: bool = False):
        x = x + self.self_attn(self.layer_norm1(x).astype(self.dtype), causal=causal)
        h = self.layer_norm2(x).astype(self.dtype)
        out = self.mlp(h)
        if self.adapter is not None:
            out = out + self.adapter(h)
        return x + out


class Encoder(nnx.Module):
    """A stack of EncoderLayers, unrolled or run as one lax.scan over their stacked weights.

    Scanning changes how, not what, is computed: parameters stay per layer (HF names); they are stacked
    inside the traced call, and only when all blocks are alike. `scan=None` scans on the CPU backend in
    train mode only: unrolled, XLA:CPU fuses the residual stream's backward additions of ALL layers into
    every consumer (quadratic work), while an unrolled forward is faster there; on an H100 the unrolled stack
    trains faster and with less memory than the scan (benchmarks/README.md). `runtime.remat` (see
    REMAT_POLICIES) rematerialises each block.
    """

    def __init__(self, cfg, rs: RSConfig, runtime: Runtime, *, rngs: nnx.Rngs):
        n = cfg.num_hidden_layers
        self.remat = runtime.remat
        self.scan = runtime.scan_layers
        self.layers = nnx.List([EncoderLayer(cfg, rs.applies_to(i, n), rs, runtime, rngs=rngs) for i in range(n)])

    def _training(self) -> bool:
        """Train mode: the blocks' dropout is on (model.train())."""
        return any(isinstance(m, nnx.Dropout) and not m.deterministic for _, m in nnx.iter_modules(self.layers[0]))

    def _policy(self):
        name = REMAT_POLICIES[self.remat]
        return getattr(jax.checkpoint_policies, name) if name else None

    def __call__(self, x, causal: bool = False):
        scan = self.scan if self.scan is not None else jax.default_backend() == "cpu" and self._training()
        if scan and len(self.layers) > 1:
            graphdefs, states = zip(*(nnx.split(layer) for layer in self.layers))
            if all(g == graphdefs[0] for g in graphdefs[1:]):  # e.g. not when only some blocks have adapters
                return self._scan(x, causal, graphdefs[0], states)
        call = lambda layer, x: layer(x, causal=causal)  # noqa: E731
        if self.remat:
            call = nnx.remat(call, policy=self._policy())
        for layer in self.layers:
            x = call(layer, x)
        return x

    def _scan(self, x, causal, graphdef, states):
        stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)

        def body(x, state):
            layer = nnx.merge(graphdef, state)
            x = layer(x, causal=causal)
            return x, nnx.state(layer, nnx.RngCount)

        if self.remat:
            body = jax.checkpoint(body, policy=self._policy(), prevent_cse=False)
        x, counts = jax.lax.scan(body, x, stacked)
        # Active dropout advanced its RNG counters, as the unrolled loop does in place; otherwise nothing
        # changed, and nothing is written (the state may belong to an outer trace level).
        if any(isinstance(m, nnx.Dropout) and m.rate > 0 and not m.deterministic
               for _, m in nnx.iter_modules(self.layers[0])):
            for i, layer in enumerate(self.layers):
                nnx.update(layer, jax.tree.map(lambda leaf: leaf[i], counts))
        return x


class VisionEmbeddings(nnx.Module):
    """Patch conv (no bias) + class token + position table, interpolated when the grid differs."""

    def __init__(self, cfg: VisionConfig, runtime: Runtime, *, rngs: nnx.Rngs):
        d, p = cfg.hidden_size, cfg.patch_size
        self.patch_size = p
        self.dtype = runtime.dtype
        self.patch_embedding = nnx.Conv(3, d, kernel_size=(p, p), strides=(p, p), padding="VALID",
                                        use_bias=False, dtype=runtime.dtype, rngs=rngs)
        self.class_embedding = nnx.Param(jax.random.normal(rngs.params(), (d,), jnp.float32) * d ** -0.5)
        self.position_embedding = nnx.Embed(cfg.grid ** 2 + 1, d, rngs=rngs)

    def __call__(self, pixels):
        b, hgt, wid, _ = pixels.shape
        p = self.patch_size
        if hgt % p or wid % p:
            raise ValueError(f"image size {hgt}x{wid} is not a multiple of the patch size {p}")
        x = self.patch_embedding(pixels.astype(self.dtype))  # [B, H/p, W/p, D]
        x = x.reshape(b, -1, x.shape[-1])
        cls = jnp.broadcast_to(self.class_embedding[...].astype(x.dtype), (b, 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1)
        pos = interpolate_position_embedding(self.position_embedding.embedding[...], hgt // p, wid // p)
        return x + pos.astype(x.dtype)[None]


class VisionTransformer(nnx.Module):
    """HF CLIPVisionTransformer, returning every token's post_layernorm output."""

    def __init__(self, cfg: VisionConfig, rs: RSConfig, runtime: Runtime, *, rngs: nnx.Rngs):
        self.dtype = runtime.dtype
        self.embeddings = VisionEmbeddings(cfg, runtime, rngs=rngs)
        self.pre_layrnorm = _layer_norm(cfg.hidden_size, cfg.layer_norm_eps, rngs)  # (sic), as HF spells it
        self.encoder = Encoder(cfg, rs, runtime, rngs=rngs)
        self.post_layernorm = _layer_norm(cfg.hidden_size, cfg.layer_norm_eps, rngs)

    def __call__(self, pixels):
        x = self.pre_layrnorm(self.embeddings(pixels))  # residual stream kept in fp32
        x = self.encoder(x)
        return self.post_layernorm(x).astype(self.dtype)


class TextEmbeddings(nnx.Module):
    """Token and (learned) position embeddings."""

    def __init__(self, cfg: TextConfig, *, rngs: nnx.Rngs):
        self.token_embedding = nnx.Embed(cfg.vocab_size, cfg.hidden_size, rngs=rngs)
        self.position_embedding = nnx.Embed(cfg.max_position_embeddings, cfg.hidden_size, rngs=rngs)

    def __call__(self, ids):
        n = ids.shape[1]
        limit = self.position_embedding.embedding[...].shape[0]
        if n > limit:
            raise ValueError(f"token context {n} exceeds the model's {limit} positions")
        return self.token_embedding(ids) + self.position_embedding.embedding[...][:n][None]


class TextTransformer(nnx.Module):
    """HF CLIPTextTransformer with a causal mask; returns every position after final_layer_norm."""

    def __init__(self, cfg: TextConfig, rs: RSConfig, runtime: Runtime, *, rngs: nnx.Rngs):
        self.dtype = runtime.dtype
        self.embeddings = TextEmbeddings(cfg, rngs=rngs)
        self.encoder = Encoder(cfg, rs, runtime, rngs=rngs)
        self.final_layer_norm = _layer_norm(cfg.hidden_size, cfg.layer_norm_eps, rngs)

    def __call__(self, ids):
        x = self.encoder(self.embeddings(ids), causal=True)
        return self.final_layer_norm(x).astype(self.dtype)


class CLIP(nnx.Module):
    """CLIP with optional RS adapters. Parameters fp32; activations in `dtype` (LayerNorm/softmax in fp32).

    `image_size` is the input size the model expects (default: the checkpoint's); other sizes work too,
    the position table being bicubically interpolated as Hugging Face's interpolate_pos_encoding does.
    `runtime` (see Runtime) changes how, not what, is computed (same parameters and names).
    """

    def __init__(self, config: CLIPConfig, rs: RSConfig = RSConfig(), *, image_size: Optional[int] = None,
                 runtime: Runtime = Runtime(), rngs: nnx.Rngs):
        self.config = config
        self.rs = rs
        self.image_size = int(image_size or config.vision.image_size)
        if self.image_size % config.vision.patch_size:
            raise InputError(f"image_size {self.image_size} is not a multiple of patch size {config.vision.patch_size}")
        self.runtime = runtime
        dtype = runtime.dtype
        self.dtype = dtype
        self.vision_model = VisionTransformer(config.vision, rs, runtime, rngs=rngs)
        self.visual_projection = nnx.Linear(config.vision.hidden_size, config.projection_dim, use_bias=False,
                                            dtype=dtype, rngs=rngs)
        self.text_model = TextTransformer(config.text, rs, runtime, rngs=rngs)
        self.text_projection = nnx.Linear(config.text.hidden_size, config.projection_dim, use_bias=False,
                                          dtype=dtype, rngs=rngs)
        self.logit_scale = nnx.Param(jnp.asarray(math.log(1 / 0.07), jnp.float32))

    def encode_image(self, pixels):
        """[B, H, W, 3] normalised images -> [B, 1+P, projection_dim]: every token, projected."""
        return self.visual_projection(self.vision_model(pixels))

    def encode_text(self, token_ids):
        """[N, L] int ids (L <= context) -> [N, projection_dim], taken at the end-of-text (largest id) position."""
        x = self.text_model(token_ids)
        eot = jnp.argmax(token_ids, axis=-1)
        return self.text_projection(x[jnp.arange(x.shape[0]), eot])


def abstract_clip(config: CLIPConfig, rs: RSConfig = RSConfig(), **kwargs) -> CLIP:
    """The model with ShapeDtypeStruct leaves instead of weights (nothing materialised)."""
    return nnx.eval_shape(lambda: CLIP(config, rs, rngs=nnx.Rngs(0), **kwargs))


def is_adapter_path(path) -> bool:
    """Whether an nnx state path (tuple of keys) or dotted name belongs to an RS adapter."""
    parts = path.split(".") if isinstance(path, str) else [str(p) for p in path]
    return "adapter" in parts


