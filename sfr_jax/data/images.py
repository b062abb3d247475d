"""The one image loader of predict, prepare and inspect: any image PIL opens -> RGB uint8, as the reference does.

The reference's test transform is `Image.open(path).convert("RGB")`, then a bilinear resize to the model's size
(torchvision `Resize` on a PIL image is PIL's `resize`). We do the same for every mode PIL converts correctly,
and depart only where its conversion gives garbage (first frame of a multi-frame file):
    RGB, L, 1, P, RGBA,     PIL's own conversion, as the reference: grey replicated, palette looked up (its
    LA, PA, CMYK, YCbCr,    transparency ignored), alpha DROPPED (not composited: a pixel with alpha 200
    LAB, HSV, ...           keeps its full colour), CMYK/YCbCr/LAB/HSV converted
    I;16, I;16B, I;16L,     departure: 16-bit grey scaled from 0..65535 to 0..255 (round(v / 257)), never
    I;16N, I (values in     clipped; PIL clips at 255, turning every pixel above 255 (out of 65535) white.
    0..65535)               `I` is what PIL makes of a 16-bit PGM/PPM
    F (float)               values in 0..255: PIL's conversion (it truncates); departure: values in 0..1 are
                            scaled by 255 first (PIL would read them as black); other ranges or NaN: an error
EXIF orientation, a departure: applied (`ImageOps.exif_transpose`) before the rules above; the reference
ignores it. No data set the reference was built for carries the tag (Sewer-ML and WZ-Pipe are PNG/JPEG frames
grabbed from CCTV video), so no reference figure changes; a file that carries one came from a camera or
phone, which every viewer, browser and reviewer shows upright, while its stored raster lies on its side: the
model, trained on upright frames (water at the bottom), would score a picture nobody sees. To score the
raster as the reference does, strip the tag (e.g. `exiftool -Orientation= file.jpg`).
Anything else (a mode PIL cannot convert, a file PIL cannot read, a truncated file) raises `ImageError`
naming the file, so that callers report and count it instead of scoring a wrong picture.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from sfr_jax.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
RESIZE_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_ORIENTATION = 0x0112  # the EXIF tag


class ImageError(InputError):
    """An image file that cannot be turned into an RGB picture by the rules of this module."""


def to_rgb(image: Image.Image, source: str = "image") -> Image.Image:
    """An RGB PIL image from any mode, by the module's rules; `source` names the file in errors."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT or mode == "I":
        values = np.asarray(image, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(f"{source}: 32-bit integer image with values {values.min()}..{values.max()}, "
                             "outside the 16-bit range; convert it to 8 or 16 bits first")
        grey = np.round(values / 257.0).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ImageError(f"{source}: float image with NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low >= 0 and high <= 1:
            image = Image.fromarray(values * np.float32(255), "F")
        elif not (low >= 0 and high <= 255):
            raise ImageError(f"{source}: float image with values {low:g}..{high:g}: neither 0..1 nor 0..255, "
                             "so its brightness scale is unknown; convert it to 8-bit first")
        return image.convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:  # PIL has no conversion for this mode
        raise ImageError(f"{source}: image mode {mode!r} is not supported ({error}); "
                         "convert it to RGB first") from None


def open_rgb(path: str) -> Image.Image:
    """The RGB picture of an image file (EXIF orientation applied, first frame), fully decoded."""
    try:
        with Image.open(path) as image:
            image.seek(0)
            image.load()
            if image.getexif().get(_ORIENTATION, 1) != 1:
                image = ImageOps.exif_transpose(image)
            rgb = to_rgb(image, path)
            return rgb.copy() if rgb is image else rgb  # the file's own image closes with it
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except Exception as error:  # PIL raises many types for unreadable or truncated files: all mean unusable
        raise ImageError(f"{path}: unreadable image ({type(error).__name__}: {error})") from None


def resize(image: Image.Image, size: int, method: str = "bilinear") -> Image.Image:
    """A size x size copy with PIL's `method` filter ('bilinear': the reference's evaluation transform)."""
    if image.size == (size, size):
        return image
    return image.resize((size, size), RESIZE_FILTERS[method])


def load(path: str, size: int, method: str = "bilinear") -> np.ndarray:
    """[size, size, 3] uint8 RGB of an image file, resized as the model's evaluation expects."""
    return np.asarray(resize(open_rgb(path), size, method), dtype=np.uint8)


def from_array(frame: np.ndarray, size: int, method: str = "bilinear") -> np.ndarray:
    """[size, size, 3] uint8 of an RGB uint8 frame (e.g. a decoded video frame), resized exactly as `load`
    resizes an image file holding the same pixels."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an [H, W, 3] uint8 RGB frame, got {frame.dtype} {frame.shape}")
    return np.asarray(resize(Image.fromarray(frame, "RGB"), size, method), dtype=np.uint8)


def is_image_file(path: str) -> bool:
    """Whether PIL takes `path` for an image: its extension is one of a format PIL opens (PIL's registry, so
    .ppm, .jfif, .tga, ... too), else PIL recognises its content. Whether it then loads is `load`'s word."""
    if path.lower().endswith(_pil_extensions()):
        return True
    try:
        with Image.open(path):
            return True
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def _pil_extensions() -> tuple:
    global _PIL_EXTENSIONS
    if _PIL_EXTENSIONS is None:
        Image.init()  # registers every plugin
        _PIL_EXTENSIONS = tuple(sorted({ext.lower() for ext, fmt in Image.registered_extensions().items()
                                        if fmt in Image.OPEN} | set(IMAGE_EXTENSIONS)))
    return _PIL_EXTENSIONS


_PIL_EXTENSIONS = None
