"""Heatmaps (MEF's per-class patch affinities, SPEC §3 W): the JAX model returns them without changing its
logits, they equal a numpy re-computation from the image tokens, the torch module and the ONNX graph give the
same maps (1e-5), predict --heatmaps writes what the maps say, and the map helpers agree with hand-made maps."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from PIL import Image

from export_fixtures import TINY, random_sfr
from sfr_jax import predict
from sfr_jax.convert import export, onnx_export
from sfr_jax.serve.onnx import OnnxScorer
from sfr_jax.convert.torch_model import SFRNetTorch
from sfr_jax.data import clock
from sfr_jax.eval import heatmaps
from sfr_jax.infer.model import LoadedModel
from sfr_jax.infer.steps import maps_to_grid
from sfr_jax.text.tokenizer import ClipTokenizer

SIZE, G = TINY.vision.image_size, TINY.vision.image_size // TINY.vision.patch_size
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def uint8_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def normalised(images):
    return ((images.astype(np.float32) / 255.0 - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny():
    model, classes = random_sfr(seed=5)
    images = uint8_images(3, seed=1)
    ids = tuple(classes.ids("gzsl"))

    @nnx.jit
    def both(m, x):
        plain = m(x, ids)
        logits, weights = m(x, ids, with_maps=True)
        return plain, logits, maps_to_grid(weights), m.clip.encode_image(x), m.text_features(ids)

    plain, logits, maps, tokens, text = (np.asarray(v) for v in both(model, jnp.asarray(normalised(images))))
    return dict(model=model, classes=classes, images=images, ids=ids, plain=plain, logits=logits, maps=maps,
                tokens=tokens, text=text)


def test_logits_with_maps_equal_logits_without_exactly(tiny):
    np.testing.assert_array_equal(tiny["logits"], tiny["plain"])


def test_maps_are_the_softmax_over_patches_of_the_local_cosines(tiny):
    local = tiny["tokens"][:, 1:].astype(np.float64)
    local /= np.linalg.norm(local, axis=-1, keepdims=True)
    t = tiny["text"].astype(np.float64)
    t /= np.linalg.norm(t, axis=-1, keepdims=True)
    cos = np.einsum("bpe,ce->bcp", local, t)
    w = np.exp(cos - cos.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    want = w.reshape(len(w), -1, G, G)  # patches row-major, as the patch grid
    assert tiny["maps"].shape == (3, len(tiny["ids"]), G, G)
    np.testing.assert_allclose(tiny["maps"], want, atol=1e-6)
    np.testing.assert_allclose(tiny["maps"].sum((2, 3)), 1.0, atol=1e-5)


def test_torch_module_maps_match_jax(tiny, tmp_path):
    path, _ = export.export_reference(tiny["model"], tiny["classes"], str(tmp_path / "run.pth"))
    net = SFRNetTorch.from_export(path)
    x = torch.from_numpy(normalised(tiny["images"]).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        plain = net(x, "gzsl").numpy()
        logits, maps = (v.numpy() for v in net(x, "gzsl", with_maps=True))
    np.testing.assert_array_equal(logits, plain)
    np.testing.assert_allclose(logits, tiny["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(maps, tiny["maps"], atol=1e-5, rtol=0)


def test_onnx_graph_returns_the_maps_as_an_extra_output(tiny, tmp_path):
    loaded = LoadedModel(tiny["model"], tiny["classes"], ClipTokenizer.default(), SIZE, MEAN, STD, {})
    path, meta = onnx_export.export_onnx(loaded, str(tmp_path / "maps.onnx"), maps=True)
    side = json.load(open(meta))
    assert side["outputs"]["maps"] == ["batch", len(tiny["ids"]), G, G]
    assert side["parity"]["max_abs_map_difference"] <= 1e-5
    scorer = OnnxScorer(path)
    assert scorer.has_maps
    logits, maps = scorer.logits_and_maps(tiny["images"])
    np.testing.assert_allclose(maps, tiny["maps"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, tiny["logits"], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(scorer.logits(tiny["images"]), logits)  # maps on or off: the same logits
    plain_path, _ = onnx_export.export_onnx(loaded, str(tmp_path / "plain.onnx"))
    plain = OnnxScorer(plain_path)
    assert not plain.has_maps and [o.name for o in plain.session.get_outputs()] == ["logits", "probabilities"]


def test_predict_heatmaps_writes_overlays_of_the_classes_that_fire(tiny, tmp_path, capsys):
    path, _ = export.export_reference(tiny["model"], tiny["classes"], str(tmp_path / "run.pth"))
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(tiny["images"]):
        Image.fromarray(img).save(folder / f"{i}.png")
    out = tmp_path / "maps"
    assert predict.main(["--checkpoint", path, str(folder), "--heatmaps", str(out), "--format", "json",
                         "--out", str(tmp_path / "p.json")]) == 0
    result = json.load(open(tmp_path / "p.json"))
    record = json.load(open(out / "heatmaps.json"))
    codes = record["classes"]
    for item, image in zip(record["images"], result["images"]):
        assert [m["code"] for m in item["maps"]] == image["labels"]  # one overlay per class that fires
    assert predict.main(["--checkpoint", path, str(folder), "--heatmaps", str(out), "--heatmaps-all"]) == 0
    record = json.load(open(out / "heatmaps.json"))
    for i, item in enumerate(record["images"]):
        assert [m["code"] for m in item["maps"]] == codes
        for j, m in enumerate(item["maps"]):
            want = np.unravel_index(np.argmax(tiny["maps"][i, j]), (G, G))
            assert (m["peak"]["row"], m["peak"]["col"]) == tuple(int(v) for v in want)
            picture = np.asarray(Image.open(out / m["file"]).convert("RGB"))
            assert picture.shape == (224, 224, 3)
    assert sorted(os.listdir(out)) == sorted(["heatmaps.json"] + [f"{i}.{c}.png" for i in range(3) for c in codes])


def test_peak_and_clock_position_of_hand_made_maps():
    g = 8
    flat = np.full((g, g), 1.0 / g ** 2)
    assert heatmaps.clock_position(flat) is None
    right = flat.copy()
    right[3:5, 7] += 0.2  # the middle of the right edge: 3 o'clock
    right /= right.sum()
    assert heatmaps.peak(right)["col"] == 7 and abs(heatmaps.peak(right)["y"] - 0.5) <= 1 / g
    pos = heatmaps.clock_position(right)
    assert (pos["hour"], pos["from"], pos["to"]) == (3, 3, 3)
    top = flat.copy()
    top[0, 3:5] += 0.2
    assert heatmaps.clock_position(top)["hour"] == 12
    # the same top mass seen from an axis low in the picture is still up, but off to the left: 11 to 1
    assert clock.hour_distance(heatmaps.clock_position(top, axis=(0.9, 0.9))["hour"], 11) <= 1
    arc = flat.copy()  # mass from the upper right round to the lower right: 2 to 4
    for hour in (2, 3, 4):
        a = np.radians(hour * 30)
        arc[int(4 - 3.5 * np.cos(a)), int(4 + 3.5 * np.sin(a))] += 0.1
    pos = heatmaps.clock_position(arc)
    assert (pos["hour"], pos["from"], pos["to"]) == (3, 2, 4)
    assert heatmaps.clock_text(pos) == "2-4"


def test_clock_convention():
    assert [clock.hour(a) for a in (0, 14, 16, 90, 180, 270, 345, 359)] == [12, 12, 1, 3, 6, 9, 12, 12]
    assert clock.hour(float(clock.angles([1.0], [0.0], (0.0, 0.0))[0])) == 3  # right of the axis
    assert clock.hour(float(clock.angles([0.0], [1.0], (0.0, 0.0))[0])) == 6  # below (y grows downward)
    assert clock.covered_arc([350, 10, 20]) == (350.0, 20.0)
    assert clock.hour_distance(11, 1) == 2 and clock.hour_distance(12, 6) == 6


def test_clock_hour_stays_inside_its_span_when_mass_lies_elsewhere_too():
    g = 8
    heat = np.full((g, g), 1.0 / g ** 2)
    heat[3:5, 7] += 0.2  # the defect at 3 o'clock
    heat[0, 0] += 0.12  # and lesser mass at 10-11 o'clock (e.g. the camera's overlay in a corner)
    heat[0, 1] += 0.12  # the mean direction of all the mass would be 2 o'clock
    pos = heatmaps.clock_position(heat / heat.sum())
    assert (pos["hour"], pos["from"], pos["to"]) == (3, 3, 3)
