"""Our Flax CLIP towers equal Hugging Face's PyTorch CLIPModel (fp32, 1e-5) on tiny random checkpoints."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest
import torch
import transformers
from flax import nnx

from sfr_jax.convert.hf import hf_name_to_ours, load_hf_clip
from sfr_jax.models.store import assign_params, expected_shapes
from sfr_jax.infer.model import count
from sfr_jax.models.clip import CLIP, CLIPConfig, Runtime, abstract_clip, interpolate_position_embedding
from sfr_jax.models.rs import RSConfig
from tiny_clip import make_tiny_hf_clip

TOL = 1e-5


def count_params(module, adapters_only=False):
    """Parameter scalars (only the RS adapters' with adapters_only), counted as the training loop counts."""
    return count(nnx.state(module, nnx.All(nnx.Param, nnx.PathContains("adapter")) if adapters_only else nnx.Param))
SHAPES = {
    # name: (fixture sizes, image sizes to run (H, W); the first is the checkpoint's)
    "a": (dict(), [(32, 32), (48, 40), (24, 24)]),
    "b": (dict(vision_width=48, vision_layers=1, vision_heads=4, vision_mlp=96, image_size=16, patch_size=4,
               text_width=40, text_layers=3, text_heads=2, text_mlp=72, vocab_size=1000, context=20,
               projection_dim=16, seed=1), [(16, 16), (20, 12)]),
}


@pytest.fixture(scope="module", params=sorted(SHAPES))
def pair(request, tmp_path_factory):
    sizes, image_sizes = SHAPES[request.param]
    path = make_tiny_hf_clip(str(tmp_path_factory.mktemp(f"hf_{request.param}")), **sizes)
    hf = transformers.CLIPModel.from_pretrained(path).eval()
    config, flat = load_hf_clip(path)
    ours = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(ours, flat)
    return hf, ours, image_sizes


def _hf_tokens(hf, pixels):
    with torch.no_grad():
        out = hf.vision_model(pixel_values=torch.from_numpy(pixels), interpolate_pos_encoding=True)
        tokens = hf.visual_projection(hf.vision_model.post_layernorm(out.last_hidden_state))
        pooled = hf.get_image_features(pixel_values=torch.from_numpy(pixels), interpolate_pos_encoding=True)
    pooled = getattr(pooled, "pooler_output", pooled)
    return tokens.numpy(), pooled.numpy()


def _set_mode(model, mode):
    """train: softmax attention (differentiated); eval: the attention normalised after its second matmul."""
    model.train() if mode == "train" else model.eval()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_image_tokens_and_pooled_match_hf(pair, mode):
    hf, ours, image_sizes = pair
    _set_mode(ours, mode)
    rng = np.random.RandomState(0)
    for h, w in image_sizes:  # the checkpoint's size, then others (position-embedding interpolation)
        pixels = rng.randn(2, 3, h, w).astype(np.float32)
        ref_tokens, ref_pooled = _hf_tokens(hf, pixels)
        got = np.asarray(ours.encode_image(jnp.asarray(pixels.transpose(0, 2, 3, 1))))
        p = hf.config.vision_config.patch_size
        assert got.shape == (2, 1 + (h // p) * (w // p), hf.config.projection_dim)
        np.testing.assert_allclose(got, ref_tokens, atol=TOL, rtol=0, err_msg=f"tokens at {h}x{w}")
        np.testing.assert_allclose(got[:, 0], ref_pooled, atol=TOL, rtol=0, err_msg=f"pooled at {h}x{w}")


def _random_ids(vocab, context, lengths, seed=0):
    rng = np.random.RandomState(seed)
    ids = np.zeros((len(lengths), context), np.int64)
    for i, n in enumerate(lengths):  # start, body, end (the largest id), zero padding
        ids[i, 0] = vocab - 2
        ids[i, 1:n - 1] = rng.randint(1, vocab - 2, n - 2)
        ids[i, n - 1] = vocab - 1
    return ids


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_text_features_match_hf(pair, mode):
    hf, ours, _ = pair
    _set_mode(ours, mode)
    cfg = hf.config.text_config
    ids = _random_ids(cfg.vocab_size, cfg.max_position_embeddings, [3, 7, cfg.max_position_embeddings - 1])
    with torch.no_grad():
        ref = hf.get_text_features(input_ids=torch.from_numpy(ids))
    ref = getattr(ref, "pooler_output", ref).numpy()
    got = np.asarray(ours.encode_text(jnp.asarray(ids, jnp.int32)))
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


def test_text_context_cut_is_exact(pair):
    """The causal mask makes the end-of-text feature independent of the padding after it."""
    hf, ours, _ = pair
    cfg = hf.config.text_config
    ids = _random_ids(cfg.vocab_size, cfg.max_position_embeddings, [3, 6], seed=1)
    full = np.asarray(ours.encode_text(jnp.asarray(ids, jnp.int32)))
    cut = np.asarray(ours.encode_text(jnp.asarray(ids[:, :8], jnp.int32)))
    np.testing.assert_allclose(cut, full, atol=1e-6, rtol=0)


def test_interpolation_equals_torch_bicubic():
    rng = np.random.RandomState(0)
    table = rng.randn(1 + 5 * 5, 6).astype(np.float32)
    for gh, gw in [(7, 9), (3, 4), (5, 5), (10, 2)]:
        grid = torch.from_numpy(table[1:]).reshape(1, 5, 5, 6).permute(0, 3, 1, 2)
        ref = torch.nn.functional.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        ref = np.concatenate([table[:1], ref.permute(0, 2, 3, 1).reshape(gh * gw, 6).numpy()])
        got = np.asarray(interpolate_position_embedding(jnp.asarray(table), gh, gw))
        np.testing.assert_allclose(got, ref, atol=TOL, rtol=0, err_msg=f"{gh}x{gw}")


def test_attention_impls_agree_and_bf16_runs(pair):
    _, ours, image_sizes = pair
    config = ours.config
    h, w = image_sizes[0]
    pixels = jnp.asarray(np.random.RandomState(2).randn(2, h, w, 3).astype(np.float32))
    ids = jnp.asarray(_random_ids(config.text.vocab_size, 8, [4, 8]), jnp.int32)
    ref_img, ref_txt = ours.encode_image(pixels), ours.encode_text(ids)
    params = nnx.state(ours, nnx.Param)
    for kwargs, tol in [(dict(attention_impl="xla"), TOL), (dict(dtype=jnp.bfloat16), 0.1)]:
        other = CLIP(config, RSConfig(enabled=False), runtime=Runtime(**kwargs), rngs=nnx.Rngs(1))
        nnx.update(other, params)
        img, txt = other.encode_image(pixels), other.encode_text(ids)
        assert img.dtype == kwargs.get("dtype", jnp.float32)
        assert jax.tree.leaves(nnx.state(other, nnx.Param))[0].dtype == jnp.float32  # params stay fp32
        scale = float(jnp.abs(ref_img).max())
        np.testing.assert_allclose(np.asarray(img, np.float32), ref_img, atol=tol * scale, rtol=0)
        np.testing.assert_allclose(np.asarray(txt, np.float32), ref_txt, atol=tol * float(jnp.abs(ref_txt).max()), rtol=0)


@pytest.mark.parametrize("preset", ["vit_b16", "vit_b32", "vit_l14", "vit_l14_336"])
def test_presets_have_hf_parameter_shapes(preset):
    """Every preset builds abstractly and has exactly the parameters of HF's CLIPModel of that config."""
    config = getattr(CLIPConfig, preset)()
    with torch.device("meta"):
        hf = transformers.CLIPModel(transformers.CLIPConfig.from_dict(config.to_hf_dict()))
    want = {}
    for name, p in hf.state_dict().items():
        if name.endswith("position_ids"):
            continue
        ours, kind = hf_name_to_ours(name)
        shape = tuple(p.shape)
        if kind == "linear":
            shape = shape[::-1]
        elif kind == "conv":
            shape = (shape[2], shape[3], shape[1], shape[0])
        want[ours] = shape
    assert expected_shapes(config) == want
    assert count_params(abstract_clip(config, RSConfig(enabled=False))) == sum(p.numel() for p in hf.parameters())


def test_rs_trainable_count_vit_b16():
    model = abstract_clip(CLIPConfig.vit_b16())  # nnx.eval_shape: no weights materialised
    assert isinstance(model.logit_scale.get_value(), jax.ShapeDtypeStruct)
    assert count_params(model.vision_model, adapters_only=True) == 2_370_048
    assert count_params(model.text_model, adapters_only=True) == 1_580_544
    assert count_params(model, adapters_only=True) == 3_950_592


def test_config_round_trips_through_hf_dict():
    for preset in ("vit_b16", "vit_l14_336", "tiny"):
        config = getattr(CLIPConfig, preset)()
        assert CLIPConfig.from_hf(config.to_hf_dict()) == config
        hf = transformers.CLIPConfig.from_dict(config.to_hf_dict())
        assert CLIPConfig.from_hf(hf.to_dict()) == config
        assert CLIPConfig.from_hf(hf.to_diff_dict()) == config  # HF's config.json omits default values
