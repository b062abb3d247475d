"""The declarative name maps: one table per foreign format, the inverse derived (round trips are exact,
layouts transposed as torch keeps them), unknown names listed, hooks applied both ways."""
import numpy as np
import pytest

from sfr_jax.convert import names
from sfr_jax.convert.names import Fuse, NameMap, Rule
from sfr_jax.errors import UnknownNames


def test_rules_placeholders_fuse_and_context_both_ways():
    table = NameMap("toy", [
        Rule("blocks.{i}.fc.kernel", "layer{i}.fc.weight", "T"),
        Rule("blocks.{i}.conv.kernel", "layer{i}.conv.weight", "conv"),
        Fuse(("blocks.{i}.q", "blocks.{i}.k"), "layer{i}.qk"),
        Rule("out.kernel", "head.{n}.weight", "T"),
    ])
    rng = np.random.default_rng(0)
    ours = {"blocks.3.fc.kernel": rng.random((4, 6)), "blocks.3.conv.kernel": rng.random((2, 2, 3, 5)),
            "blocks.3.q": rng.random((2, 4)), "blocks.3.k": rng.random((2, 4)), "out.kernel": rng.random((6, 1))}
    theirs = table.to_theirs(ours, n=7)
    assert sorted(theirs) == ["head.7.weight", "layer3.conv.weight", "layer3.fc.weight", "layer3.qk"]
    np.testing.assert_array_equal(theirs["layer3.fc.weight"], ours["blocks.3.fc.kernel"].T)  # torch: [out, in]
    assert theirs["layer3.conv.weight"].shape == (5, 3, 2, 2)  # torch: [out, in, kh, kw]
    np.testing.assert_array_equal(theirs["layer3.qk"], np.concatenate([ours["blocks.3.q"], ours["blocks.3.k"]]))
    back = table.to_ours(theirs)
    assert sorted(back) == sorted(ours)
    for k in ours:
        np.testing.assert_array_equal(back[k], ours[k])


def test_unknown_names_are_all_listed():
    with pytest.raises(UnknownNames, match=r"\['a.b', 'z'\]"):
        names.HF.to_ours({"z": np.zeros(1), "a.b": np.zeros(1), "logit_scale": np.zeros(())})
    with pytest.raises(KeyError):  # also a KeyError, for callers that expect one
        names.OPENAI.to_theirs({"nonsense": np.zeros(1)})


def test_reference_hooks_wrap_adapted_blocks_only_and_strip_module_prefix():
    rng = np.random.default_rng(1)
    flat = {
        "clip.vision_model.encoder.layers.0.layer_norm1.scale": rng.random(4),
        "clip.vision_model.encoder.layers.0.adapter.up.bias": rng.random(4),
        "clip.vision_model.encoder.layers.1.layer_norm1.scale": rng.random(4),
        "head.out.kernel": rng.random((4, 1)), "head.blocks.0.fc1.bias": rng.random(8),
    }
    ref = names.to_reference(flat)
    assert "clip_model.visual.transformer.resblocks.0.original_block.ln_1.weight" in ref
    assert "clip_model.visual.transformer.resblocks.0.adapter.up_project.bias" in ref
    assert "clip_model.visual.transformer.resblocks.1.ln_1.weight" in ref  # no adapter: not wrapped
    assert "mlp.1.weight" in ref and "mlp.0.fc1.bias" in ref  # the output Linear follows the one block
    back = names.from_reference_names({f"module.{k}": v for k, v in ref.items()})
    assert sorted(back) == sorted(flat)
