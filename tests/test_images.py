"""The one image loader: every PIL mode becomes RGB uint8 by its documented rule (checked against PIL's own
conversion, as the reference reads images, or numpy computations of the departures), and what cannot be
converted is an ImageError naming the file."""
import numpy as np
import pytest
from PIL import Image

from sfr_jax.data import images


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(tmp_path, name, image, **kw):
    path = str(tmp_path / name)
    image.save(path, **kw)
    return path


def test_rgb_and_grey_and_palette(tmp_path):
    rgb = _rgb()
    np.testing.assert_array_equal(np.asarray(images.open_rgb(_save(tmp_path, "a.png", Image.fromarray(rgb)))), rgb)
    grey = rgb[..., 0]
    out = np.asarray(images.open_rgb(_save(tmp_path, "g.png", Image.fromarray(grey, "L"))))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    palette = Image.fromarray(rgb).quantize(8)
    expected = np.asarray(palette.convert("RGB"))  # the palette's own colours
    np.testing.assert_array_equal(np.asarray(images.open_rgb(_save(tmp_path, "p.png", palette))), expected)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000], [32768, 65000, 65535]], np.uint16)
    path = _save(tmp_path, "sixteen.png", Image.fromarray(values))
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")  # what the old convert("RGB") clipped to white
    out = np.asarray(images.open_rgb(path))
    want = np.round(values / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(out, np.repeat(want[..., None], 3, axis=2))
    assert out.max() == 255 and out[0, 2, 0] == 4  # 1000 / 257 -> 3.9: dark stays dark


def test_alpha_is_dropped_as_pil_converts(tmp_path):
    """The reference's Image.open(...).convert("RGB"): alpha dropped, colours kept (not composited)."""
    rgb = _rgb()
    alpha = np.random.default_rng(1).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    path = _save(tmp_path, "a.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"))
    np.testing.assert_array_equal(np.asarray(images.open_rgb(path)), rgb)
    la = Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA")
    out = np.asarray(images.open_rgb(_save(tmp_path, "la.png", la)))
    np.testing.assert_array_equal(out, np.repeat(rgb[..., :1], 3, axis=2))
    transparent = Image.fromarray(rgb).quantize(4)
    path = _save(tmp_path, "t.png", transparent, transparency=0)
    out = np.asarray(images.open_rgb(path))
    np.testing.assert_array_equal(out, np.asarray(transparent.convert("RGB")))  # the palette's colour, not black
    assert (np.asarray(transparent) == 0).any() and out[np.asarray(transparent) == 0].max() > 0


def test_cmyk_and_float_tiff(tmp_path):
    cmyk = Image.fromarray(_rgb()).convert("CMYK")
    out = np.asarray(images.open_rgb(_save(tmp_path, "c.tif", cmyk)))
    np.testing.assert_array_equal(out, np.asarray(cmyk.convert("RGB")))
    unit = np.random.default_rng(2).random((4, 5)).astype(np.float32)
    out = np.asarray(images.open_rgb(_save(tmp_path, "f.tif", Image.fromarray(unit, "F"))))
    # 0..1 is scaled (PIL would read it as black), then truncated as PIL truncates 0..255 floats
    np.testing.assert_array_equal(out[..., 0], np.floor(unit * np.float32(255)).astype(np.uint8))
    bytes_range = unit * 200
    out = np.asarray(images.open_rgb(_save(tmp_path, "f255.tif", Image.fromarray(bytes_range, "F"))))
    np.testing.assert_array_equal(out[..., 0], np.floor(bytes_range).astype(np.uint8))
    with pytest.raises(images.ImageError, match=r"f1000.tif: float image with values [0-9.]+\.\.[0-9.]+: neither 0..1 nor 0..255"):
        images.open_rgb(_save(tmp_path, "f1000.tif", Image.fromarray(unit * 1000, "F")))


def test_exif_orientation_is_applied(tmp_path):
    rgb = _rgb(4, 6)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    path = _save(tmp_path, "r.png", Image.fromarray(rgb), exif=exif)
    np.testing.assert_array_equal(np.asarray(images.open_rgb(path)), np.rot90(rgb, k=-1))


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(images.ImageError, match="missing.png: no such image file"):
        images.open_rgb(str(tmp_path / "missing.png"))
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(images.ImageError, match="text.png: unreadable image"):
        images.open_rgb(str(tmp_path / "text.png"))
    whole = (tmp_path / "whole.png")
    Image.fromarray(_rgb(64, 64)).save(whole)
    (tmp_path / "cut.png").write_bytes(whole.read_bytes()[:200])
    with pytest.raises(images.ImageError, match="cut.png: unreadable image"):
        images.open_rgb(str(tmp_path / "cut.png"))


def test_load_and_from_array_resize_alike(tmp_path):
    rgb = _rgb(30, 40)
    path = _save(tmp_path, "x.png", Image.fromarray(rgb))
    np.testing.assert_array_equal(images.load(path, 16), images.from_array(rgb, 16))
    np.testing.assert_array_equal(images.load(path, 16),
                                  np.asarray(Image.fromarray(rgb).resize((16, 16), Image.BILINEAR)))
