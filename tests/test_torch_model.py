"""The torch-only SFR-Net: loads the reference-layout export + sidecar and gives the JAX logits (1e-4)."""
import numpy as np
import pytest
import torch

from export_fixtures import TINY, jax_logits, random_images, random_sfr
from sfr_jax.convert import export
from sfr_jax.convert.torch_model import SFRNetTorch
from sfr_jax.models.clip import CLIPConfig
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.sfr import SFRConfig


def torch_logits(model, images_nhwc, mode):
    with torch.no_grad():
        return model(torch.from_numpy(images_nhwc.transpose(0, 3, 1, 2).copy()), mode).numpy()


IMAGES = random_images(3, TINY.vision.image_size, seed=1)


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    model, classes = random_sfr()
    path, _ = export.export_reference(model, classes, str(tmp_path_factory.mktemp("exp") / "run.pth"))
    return model, classes, SFRNetTorch.from_export(path), jax_logits(model, classes, IMAGES)


@pytest.mark.parametrize("mode", ["train", "zsl", "gzsl"])
def test_tiny_logits_match_jax(tiny_export, mode):
    model, classes, tmodel, jax_out = tiny_export
    want = jax_out[mode]
    got = torch_logits(tmodel, IMAGES, mode)
    assert got.shape == (3, len(classes.ids(mode)))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert tmodel.codes == list(classes.codes)


def test_hf_layout_runs_in_the_module_too(tiny_export, tmp_path):
    model, classes, tmodel, jax_out = tiny_export
    hmodel = SFRNetTorch.from_hf_export(export.export_hf(model, classes, str(tmp_path / "hf")))
    assert sorted(hmodel.state_dict()) == sorted(tmodel.state_dict())
    for mode in ("train", "gzsl"):
        np.testing.assert_allclose(torch_logits(hmodel, IMAGES, mode), jax_out[mode], atol=1e-4, rtol=0)


def test_state_dict_round_trips_into_the_module(tiny_export, tmp_path):
    model, classes, tmodel, jax_out = tiny_export
    state = tmodel.state_dict()
    assert all(not k.startswith(("class_tokens", "adjacency")) for k in state)  # buffers are not weights
    assert sorted(state) == sorted(export.to_reference(export.model_flat(model)))  # the reference's keys
    path = tmp_path / "saved.pth"
    torch.save(state, path)  # the module's own state_dict out and back into a fresh module
    again = SFRNetTorch(tmodel.sidecar).eval()
    again.load_state_dict(torch.load(path, weights_only=True), strict=True)
    for key, value in again.state_dict().items():
        assert torch.equal(value, state[key]), key
    np.testing.assert_allclose(torch_logits(again, IMAGES, "gzsl"), jax_out["gzsl"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", ["ablated", "other_size"])
def test_variants_match_jax(tmp_path, variant):
    if variant == "ablated":  # no MEF local branch, adapters in the last block only
        sfr = SFRConfig(rs=RSConfig(bottleneck_dim=8, layers=(-1,)), use_local=False, gcn_hidden=16)
        model, classes = random_sfr(sfr_config=sfr, seed=3)
    else:  # runs at 48 px with a 32-px position table: the export carries the re-gridded table
        model, classes = random_sfr(seed=4, image_size=48)
    path, _ = export.export_reference(model, classes, str(tmp_path / "run.safetensors"))
    tmodel = SFRNetTorch.from_export(path)
    images = random_images(2, model.clip.image_size, seed=2)
    for mode, want in jax_logits(model, classes, images, ("zsl", "gzsl")).items():
        np.testing.assert_allclose(torch_logits(tmodel, images, mode), want, atol=1e-4, rtol=0)


def test_vit_b16_shaped_random_model_matches_jax(tmp_path):
    """Full ViT-B/16 shapes (224 px, 12+12 blocks, adapters everywhere, the reference's head), batch 1."""
    sfr = SFRConfig(rs=RSConfig(bottleneck_dim=128))
    model, classes = random_sfr(CLIPConfig.vit_b16(), sfr, n_seen=12, n_unseen=5, seed=5)
    state = export.to_reference(export.model_flat(model))
    sidecar = export.make_sidecar(model, classes, layout="reference")
    tmodel = SFRNetTorch(sidecar).eval()
    tmodel.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    images = random_images(1, 224, seed=6)
    want = jax_logits(model, classes, images, ("gzsl",))["gzsl"]
    np.testing.assert_allclose(torch_logits(tmodel, images, "gzsl"), want, atol=1e-4, rtol=0)
