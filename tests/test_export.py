"""Export: reference key layout (derived here from OpenAI CLIP's naming scheme), bitwise round trip, and the
Hugging Face layout loading in transformers.CLIPModel with matching features."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from export_fixtures import TINY, TINY_SFR, random_images, random_sfr
from sfr_jax.convert import export
from sfr_jax.models.store import assign_params
from sfr_jax.convert.torch_model import load_state_dict
from sfr_jax.models.clip import CLIP
from sfr_jax.models.rs import RSConfig


def openai_sfr_keys(vw, vl, patch, grid, tw, tl, ctx, vocab, embed, vmlp, tmlp, bottleneck, adapted, head_hidden,
                    head_blocks, gcn_hidden):
    """{key: shape} of the reference SFR-Net, written from OpenAI CLIP's state_dict naming (nn.MultiheadAttention
    with a fused in-projection; RSBlockWrapper = original_block + adapter) and the reference's MEF/GR heads."""
    keys = {
        "visual.class_embedding": (vw,), "visual.positional_embedding": (grid * grid + 1, vw),
        "visual.proj": (vw, embed), "visual.conv1.weight": (vw, 3, patch, patch),
        "visual.ln_pre.weight": (vw,), "visual.ln_pre.bias": (vw,),
        "visual.ln_post.weight": (vw,), "visual.ln_post.bias": (vw,),
        "positional_embedding": (ctx, tw), "text_projection": (tw, embed), "logit_scale": (),
        "token_embedding.weight": (vocab, tw), "ln_final.weight": (tw,), "ln_final.bias": (tw,),
    }
    for tower, width, layers, mlp in (("visual.transformer", vw, vl, vmlp), ("transformer", tw, tl, tmlp)):
        for i in range(layers):
            wrap = f"{tower}.resblocks.{i}." + ("original_block." if i in adapted else "")
            keys.update({wrap + "attn.in_proj_weight": (3 * width, width), wrap + "attn.in_proj_bias": (3 * width,),
                         wrap + "attn.out_proj.weight": (width, width), wrap + "attn.out_proj.bias": (width,),
                         wrap + "ln_1.weight": (width,), wrap + "ln_1.bias": (width,),
                         wrap + "ln_2.weight": (width,), wrap + "ln_2.bias": (width,),
                         wrap + "mlp.c_fc.weight": (mlp, width), wrap + "mlp.c_fc.bias": (mlp,),
                         wrap + "mlp.c_proj.weight": (width, mlp), wrap + "mlp.c_proj.bias": (width,)})
            if i in adapted:
                a = f"{tower}.resblocks.{i}.adapter."
                keys.update({a + "down_project.weight": (bottleneck, width), a + "down_project.bias": (bottleneck,),
                             a + "up_project.weight": (width, bottleneck), a + "up_project.bias": (width,)})
    keys = {"clip_model." + k: v for k, v in keys.items()}
    for b in range(head_blocks):
        keys.update({f"mlp.{b}.fc1.weight": (head_hidden, embed), f"mlp.{b}.fc1.bias": (head_hidden,),
                     f"mlp.{b}.fc2.weight": (embed, head_hidden), f"mlp.{b}.fc2.bias": (embed,),
                     f"mlp.{b}.layer_norm.weight": (embed,), f"mlp.{b}.layer_norm.bias": (embed,)})
    keys.update({f"mlp.{head_blocks}.weight": (1, embed), f"mlp.{head_blocks}.bias": (1,),
                 "gcn_corrector.gc1.weight": (1, gcn_hidden), "gcn_corrector.gc2.weight": (gcn_hidden, 1)})
    return keys


@pytest.fixture(scope="module")
def tiny():
    return random_sfr()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_reference_layout_has_exactly_the_reference_keys(tiny, tmp_path, suffix):
    model, classes = tiny
    path, meta = export.export_reference(model, classes, str(tmp_path / f"run{suffix}"))
    state = load_state_dict(path)
    v, t, s = TINY.vision, TINY.text, TINY_SFR
    want = openai_sfr_keys(v.hidden_size, v.num_hidden_layers, v.patch_size, v.grid, t.hidden_size,
                           t.num_hidden_layers, t.max_position_embeddings, t.vocab_size, TINY.projection_dim,
                           v.intermediate_size, t.intermediate_size, s.rs.bottleneck_dim, {0, 1}, s.head_hidden,
                           s.head_blocks, s.gcn_hidden)
    assert sorted(state) == sorted(want)
    assert {k: tuple(x.shape) for k, x in state.items()} == want
    assert {x.dtype for x in state.values()} == {torch.float32}
    side = json.load(open(meta))
    assert side["layout"] == "reference" and side["weights"] == f"run{suffix}"
    assert [c["code"] for c in side["classes"]] == list(classes.codes)
    assert np.array_equal(np.asarray(side["adjacency"], np.float32), np.asarray(model.adjacency[...]))
    assert np.array_equal(np.asarray(side["class_tokens"]), np.asarray(model.class_tokens[...]))
    assert side["seen_ids"] == [0, 1, 2, 3] and side["unseen_ids"] == [4, 5, 6]


def test_partial_adapter_layers_are_unwrapped_elsewhere(tmp_path):
    from sfr_jax.models.sfr import SFRConfig
    sfr = SFRConfig(rs=RSConfig(bottleneck_dim=8, layers=(1,)), head_hidden=48, gcn_hidden=16)
    model, classes = random_sfr(sfr_config=sfr)
    path, _ = export.export_reference(model, classes, str(tmp_path / "run.pth"))
    state = load_state_dict(path)
    assert "clip_model.visual.transformer.resblocks.0.attn.in_proj_weight" in state
    assert "clip_model.visual.transformer.resblocks.1.original_block.attn.in_proj_weight" in state
    assert "clip_model.transformer.resblocks.1.adapter.up_project.bias" in state
    assert not any(k.startswith("clip_model.transformer.resblocks.0.adapter") for k in state)
    config, flat = export.from_reference({k: v.numpy() for k, v in state.items()}, vision_heads=2, text_heads=2)
    assert export.sfr_config_from_flat(flat, config).rs.layers == (1,)


def test_round_trip_through_reference_layout_is_bitwise(tiny, tmp_path):
    model, classes = tiny
    path, _ = export.export_reference(model, classes, str(tmp_path / "run.pth"))
    state = {k: v.numpy() for k, v in load_state_dict(path).items()}
    config, flat = export.from_reference(state, vision_heads=2, text_heads=2)
    assert config == TINY
    assert export.sfr_config_from_flat(flat, config) == TINY_SFR
    before = export.model_flat(model)
    assert sorted(flat) == sorted(before)
    for k in before:
        assert flat[k].dtype == np.float32 and np.array_equal(flat[k], before[k]), k


def test_hf_layout_loads_in_transformers_with_matching_features(tiny, tmp_path):
    import transformers
    from safetensors.numpy import load_file

    model, classes = tiny
    out = export.export_hf(model, classes, str(tmp_path / "hf"))
    hf = transformers.CLIPModel.from_pretrained(out).eval()
    # transformers' CLIP has no adapters: compare with our same weights in a CLIP without adapters
    flat = export.model_flat(model)
    base = CLIP(TINY, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(base, {k[5:]: v for k, v in flat.items() if k.startswith("clip.") and ".adapter." not in k},
                  allow_missing=None)
    images = random_images(2, TINY.vision.image_size)
    tokens = np.asarray(model.class_tokens[...])
    with torch.no_grad():
        px = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
        vis = hf.vision_model(pixel_values=px).last_hidden_state
        hf_img = hf.visual_projection(hf.vision_model.post_layernorm(vis)).numpy()
        ids = torch.from_numpy(tokens.astype(np.int64))
        hf_txt = hf.text_projection(hf.text_model(input_ids=ids).last_hidden_state[
            torch.arange(ids.shape[0]), ids.argmax(-1)]).numpy()
    np.testing.assert_allclose(np.asarray(base.encode_image(jnp.asarray(images))), hf_img, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(base.encode_text(jnp.asarray(tokens))), hf_txt, atol=1e-5, rtol=0)
    # the extras file holds the rest, and together they give back every parameter exactly
    from sfr_jax.convert.hf import read_hf_state, hf_to_ours
    back = {f"clip.{k}": v for k, v in hf_to_ours(read_hf_state(out)).items()}
    back.update(export.hf_extras_to_ours(load_file(os.path.join(out, export.EXTRAS_FILE))))
    assert sorted(back) == sorted(flat)
    assert all(np.array_equal(back[k], flat[k]) for k in flat)
    side = json.load(open(os.path.join(out, export.HF_SIDECAR)))
    assert side["layout"] == "hf" and os.path.isfile(os.path.join(out, export.CLASSES_FILE))


def test_export_refuses_unknown_suffix_and_leaves_nothing(tiny, tmp_path):
    model, classes = tiny
    with pytest.raises(ValueError, match="pth"):
        export.export_reference(model, classes, str(tmp_path / "run.bin"))
    assert os.listdir(tmp_path) == []  # neither weights nor sidecar
    path, meta = export.export_reference(model, classes, str(tmp_path / "run.pth"))
    with pytest.raises(OSError, match=r"run.pth .*exist; choose another --to or pass --overwrite"):
        export.export_reference(model, classes, path, overwrite=False)
    os.remove(path)  # a sidecar alone also blocks a new export of that name: the two are one unit
    with pytest.raises(OSError, match=r"run.json exists"):
        export.export_reference(model, classes, path, overwrite=False)
    assert os.listdir(tmp_path) == ["run.json"]


def test_foreign_or_broken_states_are_rejected_by_name(tiny, tmp_path):
    model, _ = tiny
    state = export.to_reference(export.model_flat(model))
    with pytest.raises(KeyError, match="mlp.9.extra.weight"):
        export.from_reference({**state, "mlp.9.extra.weight": np.zeros(3, np.float32)}, vision_heads=2, text_heads=2)
    broken = dict(state)
    broken["clip_model.visual.ln_post.bias"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"post_layernorm.bias: \(5,\) != expected \(32,\)"):
        export.from_reference(broken, config=TINY)


def test_export_cli_rejects_a_reference_layout_folder(tmp_path, capsys):
    from sfr_jax import exchange as cli
    assert cli.export_main(["--checkpoint", str(tmp_path / "x.pth"), "--to", str(tmp_path / "out")]) == 2
    assert "reference layout is a .pth or .safetensors file" in capsys.readouterr().err


def test_bare_reference_pth_imports_with_each_adjacency_choice(tmp_path):
    """A reference .pth has no sidecar: Sewer-ML classes (+ a descriptions file), heads = width // 64, and the
    GR graph computed from the phrases with the trained adapters ('current'), without them ('frozen'), or given."""
    from sfr_jax.convert.import_reference import load_checkpoint
    from sfr_jax.models.clip import CLIPConfig, TextConfig, VisionConfig
    from sfr_jax.models.graph import adjacency
    from sfr_jax.models.sfr import SFRConfig
    from sfr_jax.text.classes import sewerml
    from sfr_jax.text.tokenizer import ClipTokenizer

    config = CLIPConfig(VisionConfig(64, 96, 1, 1, 32, 16), TextConfig(64, 96, 2, 1), projection_dim=32)
    model, _ = random_sfr(config, SFRConfig(rs=RSConfig(bottleneck_dim=8), head_hidden=16, gcn_hidden=8),
                          n_seen=12, n_unseen=5, seed=11)
    path = str(tmp_path / "sewerml_best.pth")
    export.save_state(path, {f"module.{k}": v for k, v in export.to_reference(export.model_flat(model)).items()})
    descriptions = tmp_path / "de.txt"
    descriptions.write_text("\n".join(f"a sewer pipe with defect {c}" for c in sewerml().codes))
    tok = ClipTokenizer.default()
    phrases = jnp.asarray(tok.encode(list(sewerml().phrases)))
    loaded = {}
    for choice in ("current", "frozen"):
        loaded[choice] = load_checkpoint(path, descriptions=str(descriptions), adjacency=choice, bare_reference=True)
    current = loaded["current"]
    assert current.class_set.codes == sewerml().codes
    assert current.class_set.descriptions[0] == "a sewer pipe with defect RB"
    flat = export.model_flat(model)
    assert all(np.array_equal(export.model_flat(current.model)[k], flat[k]) for k in flat)
    np.testing.assert_array_equal(np.asarray(current.model.adjacency[...]),
                                  np.asarray(adjacency(np.asarray(model.clip.encode_text(phrases)))))
    base = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(base, {k[5:]: v for k, v in flat.items() if k.startswith("clip.") and ".adapter." not in k},
                  allow_missing=None)
    np.testing.assert_array_equal(np.asarray(loaded["frozen"].model.adjacency[...]),
                                  np.asarray(adjacency(np.asarray(base.encode_text(phrases)))))
    given = np.full((17, 17), 1 / 17, np.float32)
    np.save(tmp_path / "a.npy", given)
    assert np.array_equal(np.asarray(load_checkpoint(path, descriptions=str(descriptions), bare_reference=True,
                                                     adjacency=str(tmp_path / "a.npy")).model.adjacency[...]), given)
