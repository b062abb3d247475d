"""Parity of the image loader and of `predict` with the reference's test transform, on the files users hand us.

The reference reads `Image.open(path).convert("RGB")` and resizes bilinearly to the model's size (torchvision
`Resize` on a PIL image calls PIL's `resize`). Each expected picture below is made that way, in the test, from
PIL alone; the two documented departures (16-bit scaled, EXIF orientation applied) are made from PIL too."""
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from export_fixtures import jax_logits, random_sfr
from sfr_jax import predict
from sfr_jax.convert import export
from sfr_jax.data import images

SIZE = 224
W, H = 720, 576  # a Sewer-ML frame size


def reference_pixels(path):
    """[SIZE, SIZE, 3] uint8: the reference's test transform before normalisation."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))


def _frame(seed):
    """A smooth-ish colour frame (gradients plus noise) so that resizing has something to average."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([x * 255 / W, y * 255 / H, (x + y) * 255 / (W + H)], axis=-1)
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def _files(folder):
    """{name: (path, expected [SIZE, SIZE, 3] uint8)} for every case of the issue."""
    out = {}
    rgb = _frame(0)
    for alpha in (200, 0, 255, "random"):
        a = (np.random.default_rng(1).integers(0, 256, (H, W), dtype=np.uint8) if alpha == "random"
             else np.full((H, W), alpha, np.uint8))
        path = str(folder / f"rgba_{alpha}.png")
        Image.fromarray(np.dstack([rgb, a]), "RGBA").save(path)
        out[f"rgba_{alpha}"] = path, reference_pixels(path)
    path = str(folder / "grey.png")
    Image.fromarray(rgb[..., 1], "L").save(path)
    out["grey"] = path, reference_pixels(path)
    path = str(folder / "palette.png")
    Image.fromarray(rgb).quantize(64).save(path)
    out["palette"] = path, reference_pixels(path)
    path = str(folder / "palette_transparent.png")
    Image.fromarray(rgb).quantize(16).save(path, transparency=3)
    out["palette_transparent"] = path, reference_pixels(path)
    # departure 1: 16-bit grey is scaled to 8 bits (PIL's convert clips every value above 255 to white)
    sixteen = (rgb[..., 0].astype(np.uint16) * 257 + np.uint16(100)).clip(0, 65535).astype(np.uint16)
    path = str(folder / "sixteen.png")
    Image.fromarray(sixteen).save(path)
    scaled = Image.fromarray(np.round(sixteen / 257.0).astype(np.uint8), "L")
    out["sixteen"] = path, np.asarray(scaled.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    with Image.open(path) as image:  # what the reference scores: every value above 255 clipped to white
        np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[..., 0], np.minimum(sixteen, 255))
    # departure 2: EXIF orientation applied (the raster is stored on its side, every viewer shows it upright)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(folder / "phone.jpg")
    Image.fromarray(_frame(2)).save(path, quality=95, exif=exif)
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
        assert upright.size == (H, W)
        out["exif"] = path, np.asarray(upright.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR))
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("parity"))


def test_loader_matches_the_reference_transform(files):
    for name, (path, want) in files.items():
        np.testing.assert_array_equal(images.load(path, SIZE), want, err_msg=name)
    # alpha 200 keeps the full colour: compositing over black would have scaled it by 200/255
    path, want = files["rgba_200"]
    with Image.open(path) as image:
        np.testing.assert_array_equal(want, np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)))
        composited = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA"))
    assert np.abs(np.asarray(composited.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)).astype(int)
                  - want.astype(int)).max() > 20
    # the EXIF departure is a real one: the reference's raster differs from what we score
    path, want = files["exif"]
    assert np.abs(reference_pixels(path).astype(int) - want.astype(int)).mean() > 5


def test_predict_logits_match_the_model_on_reference_pixels(files, tmp_path, capsys):
    from sfr_jax.text.tokenizer import ClipTokenizer
    model, classes = random_sfr(seed=3, image_size=SIZE)
    tok = ClipTokenizer.default()
    model.class_tokens.set_value(np.asarray(tok.encode(list(classes.descriptions)), np.int32))
    ckpt, _ = export.export_reference(model, classes, str(tmp_path / "model.pth"), tok)
    names = sorted(files)
    out = tmp_path / "out.json"
    code = predict.main(["--checkpoint", ckpt, *(files[n][0] for n in names), "--format", "json",
                         "--out", str(out), "--batch", "4"])
    assert code == 0, capsys.readouterr().err
    got = {item["path"]: item["logits"] for item in json.load(open(out))["images"]}
    pixels = np.stack([files[n][1] for n in names]).astype(np.float32) / 255.0
    want = jax_logits(model, classes, (pixels - 0.5) / 0.5, ("gzsl",))["gzsl"]
    logits = np.array([got[files[n][0]] for n in names])
    np.testing.assert_allclose(logits, want, atol=1e-4, rtol=0)
