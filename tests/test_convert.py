"""Weight import: HF folders, OpenAI-format state dicts (built here by an independent hand-written mapping),
the reference SFR-Net layout, inverse maps, strict errors, and the `convert-clip` verb."""
import os
import shutil

import numpy as np
import jax.numpy as jnp
import pytest
import torch
import transformers
from flax import nnx

from sfr_jax.convert.cli import convert_clip_main
from sfr_jax.convert.hf import hf_to_ours, load_hf_clip, ours_to_hf, read_hf_state
from sfr_jax.convert.openai import load_openai_clip, ours_to_openai, read_torch_state
from sfr_jax.models.store import assign_params, load_clip, load_clip_params
from sfr_jax.models.clip import CLIP
from sfr_jax.models.rs import RSConfig
from tiny_clip import make_tiny_hf_clip

SIZES = dict(vision_width=32, vision_heads=2, text_width=32, text_heads=2, projection_dim=24)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return make_tiny_hf_clip(str(tmp_path_factory.mktemp("hf")), **SIZES)


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    return transformers.CLIPModel.from_pretrained(hf_dir).eval()


def _hf_outputs(hf, pixels_nchw, ids):
    with torch.no_grad():
        out = hf.vision_model(pixel_values=torch.from_numpy(pixels_nchw), interpolate_pos_encoding=True)
        tokens = hf.visual_projection(hf.vision_model.post_layernorm(out.last_hidden_state)).numpy()
        text = hf.get_text_features(input_ids=torch.from_numpy(ids))
    return tokens, getattr(text, "pooler_output", text).numpy()


def _inputs(size=32):
    rng = np.random.RandomState(0)
    ids = np.zeros((2, 8), np.int64)
    ids[:, 0] = 49406
    ids[0, 1:4], ids[0, 4] = [320, 1125, 539], 49407
    ids[1, 1:7], ids[1, 7] = rng.randint(1, 49000, 6), 49407
    return rng.randn(2, 3, size, size).astype(np.float32), ids


def _assert_matches_hf(model, hf, size=32):
    pixels, ids = _inputs(size)
    ref_tokens, ref_text = _hf_outputs(hf, pixels, ids)
    np.testing.assert_allclose(np.asarray(model.encode_image(jnp.asarray(pixels.transpose(0, 2, 3, 1)))),
                               ref_tokens, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(model.encode_text(jnp.asarray(ids, jnp.int32))), ref_text, atol=1e-5, rtol=0)


def _hand_openai(hf_sd):
    """HF CLIPModel tensors -> OpenAI CLIP names, written out by hand (independent of sfr_jax.convert)."""
    sd = {k: v.numpy() for k, v in hf_sd.items() if not k.endswith("position_ids")}
    out = {
        "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
        "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd["vision_model.pre_layrnorm.weight"],
        "visual.ln_pre.bias": sd["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": sd["vision_model.post_layernorm.weight"],
        "visual.ln_post.bias": sd["vision_model.post_layernorm.bias"],
        "visual.proj": sd["visual_projection.weight"].T,
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": sd["text_model.final_layer_norm.weight"],
        "ln_final.bias": sd["text_model.final_layer_norm.bias"],
        "text_projection": sd["text_projection.weight"].T,
        "logit_scale": sd["logit_scale"],
        "input_resolution": np.array(32), "context_length": np.array(77), "vocab_size": np.array(49408),
    }
    for tower, prefix in (("vision_model", "visual.transformer"), ("text_model", "transformer")):
        i = 0
        while f"{tower}.encoder.layers.{i}.layer_norm1.weight" in sd:
            h, o = f"{tower}.encoder.layers.{i}.", f"{prefix}.resblocks.{i}."
            out[o + "attn.in_proj_weight"] = np.concatenate([sd[h + f"self_attn.{s}_proj.weight"] for s in "qkv"])
            out[o + "attn.in_proj_bias"] = np.concatenate([sd[h + f"self_attn.{s}_proj.bias"] for s in "qkv"])
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[o + a + ".weight"] = sd[h + b + ".weight"]
                out[o + a + ".bias"] = sd[h + b + ".bias"]
            i += 1
    return out


def _reference_layout(openai_sd, bottleneck=8, seed=0):
    """Wrap every block as the reference's RSBlockWrapper with random adapters, under `module.clip_model.`."""
    rng = np.random.RandomState(seed)
    out, adapters = {}, {}
    for k, v in openai_sd.items():
        if k in ("input_resolution", "context_length", "vocab_size"):
            continue
        parts = k.split(".")
        if "resblocks" in parts:
            j = parts.index("resblocks") + 2
            k = ".".join(parts[:j] + ["original_block"] + parts[j:])
        out["module.clip_model." + k] = v
    for prefix in sorted({k.split(".original_block.")[0] for k in out if ".original_block." in k}):
        d = out[prefix + ".original_block.ln_1.weight"].shape[0]
        for name, shape in (("down_project.weight", (bottleneck, d)), ("down_project.bias", (bottleneck,)),
                            ("up_project.weight", (d, bottleneck)), ("up_project.bias", (d,))):
            adapters[prefix + ".adapter." + name] = rng.randn(*shape).astype(np.float32)
    out.update(adapters)
    out["module.mlp.0.fc1.weight"] = rng.randn(4, 3).astype(np.float32)
    out["module.gcn_corrector.gc1.weight"] = rng.randn(1, 4).astype(np.float32)
    return out, adapters


def test_hf_folder_safetensors_and_bin_agree_and_match_hf(hf_dir, hf_model, tmp_path):
    config, flat = load_hf_clip(hf_dir)
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(model, flat)
    _assert_matches_hf(model, hf_model)
    bin_dir = tmp_path / "bin"  # the legacy pickle layout of the same model
    bin_dir.mkdir()
    shutil.copy(os.path.join(hf_dir, "config.json"), bin_dir / "config.json")
    torch.save(hf_model.state_dict(), bin_dir / "pytorch_model.bin")
    _, flat_bin = load_hf_clip(str(bin_dir))
    assert flat_bin.keys() == flat.keys()
    for k in flat:
        np.testing.assert_array_equal(flat_bin[k], flat[k], err_msg=k)


def test_hf_inverse_map_round_trips(hf_dir):
    state = {k: v for k, v in read_hf_state(hf_dir).items() if not k.endswith("position_ids")}
    back = ours_to_hf(hf_to_ours(state))
    assert back.keys() == state.keys()
    for k in state:
        np.testing.assert_array_equal(back[k], state[k], err_msg=k)


def test_openai_state_matches_hf_and_inverse(hf_model):
    openai_sd = _hand_openai(hf_model.state_dict())
    config, flat, rest = load_openai_clip(openai_sd, vision_heads=2, text_heads=2)
    assert rest == {}
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(model, flat)
    _assert_matches_hf(model, hf_model)
    back = ours_to_openai(flat)
    want = {k: v for k, v in openai_sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    assert back.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(back[k], want[k], err_msg=k)


def test_reference_sfrnet_layout_with_adapters(hf_model, tmp_path):
    openai_sd = _hand_openai(hf_model.state_dict())
    ref_sd, adapters = _reference_layout(openai_sd)
    path = str(tmp_path / "sfr.pth")
    torch.save({k: torch.from_numpy(np.array(v, order="C")) for k, v in ref_sd.items()}, path)
    config, flat, rest = load_openai_clip(path, vision_heads=2, text_heads=2)
    assert sorted(rest) == ["gcn_corrector.gc1.weight", "mlp.0.fc1.weight"]
    _, plain, _ = load_openai_clip(openai_sd, vision_heads=2, text_heads=2)
    for k, v in plain.items():
        np.testing.assert_array_equal(flat[k], v, err_msg=k)
    key = "module.clip_model.visual.transformer.resblocks.1.adapter.down_project.weight"
    np.testing.assert_array_equal(flat["vision_model.encoder.layers.1.adapter.down.kernel"], adapters[key].T)
    key = "module.clip_model.transformer.resblocks.0.adapter.up_project.bias"
    np.testing.assert_array_equal(flat["text_model.encoder.layers.0.adapter.up.bias"], adapters[key])
    # the whole flat state (adapters included) loads strictly into a model with RS bottleneck 8
    model = CLIP(config, RSConfig(bottleneck_dim=8), rngs=nnx.Rngs(0))
    assign_params(model, flat, allow_missing=None)
    # and maps back to the reference's key layout
    back = ours_to_openai(flat, reference_layout=True)
    want = {k[len("module.clip_model."):]: v for k, v in ref_sd.items() if k.startswith("module.clip_model.")}
    assert back.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(back[k], want[k], err_msg=k)


def test_torchscript_archive(hf_model, tmp_path):
    """OpenAI ships TorchScript archives; their state_dict() holds the OpenAI names."""
    openai_sd = {k: v for k, v in _hand_openai(hf_model.state_dict()).items()
                 if k not in ("input_resolution", "context_length", "vocab_size")}

    class Holder(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Holder()
    for name, value in openai_sd.items():
        *parents, leaf = name.split(".")
        node = root
        for p in parents:
            if not hasattr(node, p):
                node.add_module(p, Holder())
            node = getattr(node, p)
        node.register_parameter(leaf, torch.nn.Parameter(torch.from_numpy(np.array(value, order="C"))))
    path = str(tmp_path / "ViT-tiny.pt")
    torch.jit.save(torch.jit.script(root), path)
    state = read_torch_state(path)
    assert state.keys() == openai_sd.keys()
    config, flat, _ = load_openai_clip(path, vision_heads=2, text_heads=2)
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(model, flat)
    _assert_matches_hf(model, hf_model)


def test_strict_errors_name_the_tensor(hf_model, hf_dir, tmp_path):
    openai_sd = _hand_openai(hf_model.state_dict())
    missing = dict(openai_sd)
    del missing["transformer.resblocks.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match=r"missing.*text_model\.encoder\.layers\.1\.mlp\.fc1\.bias"):
        load_openai_clip(missing, vision_heads=2, text_heads=2)
    with pytest.raises(KeyError, match="visual.transformer.resblocks.0.attn.surprise"):
        load_openai_clip({**openai_sd, "visual.transformer.resblocks.0.attn.surprise": np.zeros(3)},
                         vision_heads=2, text_heads=2)
    wrong = {**openai_sd, "visual.ln_post.bias": np.zeros(31, np.float32)}
    with pytest.raises(ValueError, match=r"wrong shape.*vision_model\.post_layernorm\.bias: \(31,\)"):
        load_openai_clip(wrong, vision_heads=2, text_heads=2)
    # the same for a model's own assign: an extra or mis-shaped name is refused
    config, flat = load_hf_clip(hf_dir)
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="unexpected.*logit_bias"):
        assign_params(model, {**flat, "logit_bias": np.zeros(())})
    bad = {k: v for k, v in flat.items() if k != "visual_projection.kernel"}
    with pytest.raises(ValueError, match="missing.*visual_projection.kernel"):
        assign_params(model, bad)
    # HF folders: an unknown tensor is named
    from safetensors.numpy import load_file, save_file
    folder = tmp_path / "hf_extra"
    shutil.copytree(hf_dir, folder)
    tensors = load_file(str(folder / "model.safetensors"))
    tensors["vision_model.head.weight"] = np.zeros((2, 2), np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(KeyError, match="vision_model.head.weight"):
        load_hf_clip(str(folder))


def test_convert_clip_cli(hf_dir, hf_model, tmp_path, capsys):
    out = str(tmp_path / "clip")
    assert convert_clip_main(["--from", hf_dir, "--out", out]) == 0
    assert sorted(os.listdir(out))[:2] == ["clip_config.json", "params"]
    assert os.path.isfile(os.path.join(out, "tokenizer.json"))
    model = load_clip(out, rs=RSConfig())
    model.eval()
    _assert_matches_hf(model, hf_model)  # zero-initialised adapters: still the pretrained CLIP
    # an existing output is refused, and no temporary folder is left behind
    assert convert_clip_main(["--from", hf_dir, "--out", out]) == 2  # a user error
    assert "exists" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["clip"]
    # re-gridded for 48-pixel inputs: equals HF's interpolate_pos_encoding at 48
    out48 = str(tmp_path / "clip48")
    assert convert_clip_main(["--from", hf_dir, "--out", out48, "--image-size", "48"]) == 0
    config, _ = load_clip_params(out48)
    assert config.vision.image_size == 48
    _assert_matches_hf(load_clip(out48, rs=RSConfig(enabled=False)), hf_model, size=48)
    # an OpenAI-format file converts to the same parameters
    pth = str(tmp_path / "openai.pt")
    torch.save({k: torch.from_numpy(np.array(v, order="C")) for k, v in _hand_openai(hf_model.state_dict()).items()},
               pth)
    out_pt = str(tmp_path / "clip_pt")
    assert convert_clip_main(["--from", pth, "--out", out_pt, "--vision-heads", "2", "--text-heads", "2"]) == 0
    _, a = load_clip_params(out)
    _, b = load_clip_params(out_pt)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert convert_clip_main(["--from", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert not os.path.exists(tmp_path / "x")
