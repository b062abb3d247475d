"""RS adapters: a block with a non-zero adapter equals a PyTorch computation of SPEC §2; init and switches."""
import math

import numpy as np
import jax
import jax.numpy as jnp
import pytest
import torch
from flax import nnx

from sfr_jax.models.store import assign_params, flat_params
from sfr_jax.models.clip import CLIP, CLIPConfig, EncoderLayer, Runtime, TextConfig
from sfr_jax.models.rs import RSAdapter, RSConfig


def _randomise(module, seed):
    """Every parameter random and non-zero (LayerNorm scales around 1)."""
    rng = np.random.RandomState(seed)
    flat = {}
    for name, value in flat_params(module).items():
        if name.endswith("scale"):
            flat[name] = (1 + 0.2 * rng.randn(*value.shape)).astype(np.float32)
        else:
            flat[name] = (rng.randn(*value.shape) / math.sqrt(max(value.shape[0], 1))).astype(np.float32)
    assign_params(module, flat, allow_missing=None)
    return {k: torch.from_numpy(v.copy()) for k, v in flat.items()}


def _torch_block(p, x, heads, eps, causal):
    """SPEC §2 in PyTorch: x += attn(ln1 x); h = ln2 x; x += mlp(h) + up(drop(gelu(down h)))."""
    ln = lambda t, name: torch.nn.functional.layer_norm(t, t.shape[-1:], p[name + ".scale"], p[name + ".bias"], eps)
    lin = lambda t, name: t @ p[name + ".kernel"] + p[name + ".bias"]
    b, n, d = x.shape
    h = ln(x, "layer_norm1")
    q, k, v = (lin(h, f"self_attn.{s}_proj").reshape(b, n, heads, d // heads).transpose(1, 2) for s in "qkv")
    logits = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if causal:
        logits = logits.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
    att = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    x = x + lin(att, "self_attn.out_proj")
    h = ln(x, "layer_norm2")
    f = lin(h, "mlp.fc1")
    mlp = lin(f * torch.sigmoid(1.702 * f), "mlp.fc2")
    adapter = lin(torch.nn.functional.gelu(lin(h, "adapter.down")), "adapter.up")  # eval: dropout is identity
    return x + mlp + adapter


@pytest.mark.parametrize("causal", [False, True])
def test_block_with_adapter_matches_torch(causal):
    cfg = TextConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=1, num_attention_heads=4)
    rs = RSConfig(bottleneck_dim=16)
    block = EncoderLayer(cfg, True, rs, Runtime(attention_impl="einsum"), rngs=nnx.Rngs(0))
    block.eval()
    params = _randomise(block, 0)
    assert float(params["adapter.up.kernel"].abs().max()) > 0
    x = np.random.RandomState(1).randn(2, 7, 48).astype(np.float32)
    got = np.asarray(block(jnp.asarray(x), causal=causal))
    with torch.no_grad():
        ref = _torch_block(params, torch.from_numpy(x), 4, cfg.layer_norm_eps, causal).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_adapter_init_is_torch_linear_default_and_zero_up():
    adapter = RSAdapter(256, 128, rngs=nnx.Rngs(0))
    bound = 1 / math.sqrt(256)
    for leaf in (adapter.down.kernel, adapter.down.bias):
        w = np.asarray(leaf.get_value())
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound  # uniform(-b, b) has std b / sqrt(3)
    assert not np.any(np.asarray(adapter.up.kernel.get_value()))
    assert not np.any(np.asarray(adapter.up.bias.get_value()))


def test_zero_adapters_leave_clip_unchanged_and_train_mode_drops():
    config = CLIPConfig.tiny()
    plain = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    adapted = CLIP(config, RSConfig(), rngs=nnx.Rngs(params=0, dropout=1))
    nnx.update(adapted, nnx.state(plain, nnx.Param))  # base weights shared; adapters keep their init
    adapted.eval()
    plain.eval()  # the same attention formulation (eval mode normalises after the second matmul)
    pixels = jnp.asarray(np.random.RandomState(0).randn(2, 32, 32, 3).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(adapted.encode_image(pixels)), np.asarray(plain.encode_image(pixels)))
    # with a non-zero up-projection, train mode (dropout on) differs from eval mode; eval is deterministic
    for i, layer in enumerate(adapted.vision_model.encoder.layers):  # random: a constant shift would vanish in LayerNorm
        shape = layer.adapter.up.kernel.get_value().shape
        layer.adapter.up.kernel.set_value(0.05 * jax.random.normal(jax.random.key(i), shape))
    e1, e2 = adapted.encode_image(pixels), adapted.encode_image(pixels)
    np.testing.assert_array_equal(np.asarray(e1), np.asarray(e2))
    adapted.train()
    t = adapted.encode_image(pixels)
    assert float(jnp.abs(t - e1).max()) > 1e-4


def test_rs_config_layers_and_switch():
    config = CLIPConfig.tiny()
    for rs, want in [(RSConfig(), [True, True]), (RSConfig(enabled=False), [False, False]),
                     (RSConfig(layers=(0,)), [True, False]), (RSConfig(layers=(-1,)), [True, True])]:
        model = nnx.eval_shape(lambda: CLIP(config, rs, rngs=nnx.Rngs(0)))
        for tower in (model.vision_model, model.text_model):
            assert [layer.adapter is not None for layer in tower.encoder.layers] == want, rs
    model = nnx.eval_shape(lambda: CLIP(config, RSConfig(bottleneck_dim=8), rngs=nnx.Rngs(0)))
    assert model.text_model.encoder.layers[0].adapter.down.kernel.get_value().shape == (64, 8)
