"""What the model looked at: MEF's per-class patch affinities (a softmax over the g x g patches, SPEC §3 W)
as heatmaps: the peak's position, a clock position around the pipe axis, and an overlay picture.

A map [g, g] sums to 1; a uniform one is 1/g^2 everywhere. Positions are fractions of the picture's width
and height (0..1), so they hold for any frame size; the map covers the whole (square-resized) picture.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sfr_jax.data import clock
from sfr_jax.errors import InputError

# A dark-to-bright colour ramp (black, purple, red, orange, pale yellow) without matplotlib.
_RAMP = np.asarray([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], np.float32)
CENTRE_RADIUS = 0.08  # patches this close to the axis (fraction of the picture) have no clock direction


def patch_centres(g: int) -> tuple:
    """(xs, ys) [g, g] of the patch centres as fractions of the picture."""
    c = (np.arange(g) + 0.5) / g
    return np.meshgrid(c, c)


def peak(heat: np.ndarray) -> dict:
    """{'x', 'y'} (fractions, the peak patch's centre), 'row', 'col' and 'mass' of a map's maximum."""
    heat = np.asarray(heat, np.float64)
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    g_rows, g_cols = heat.shape
    return {"x": (col + 0.5) / g_cols, "y": (row + 0.5) / g_rows, "row": int(row), "col": int(col),
            "mass": float(heat[row, col])}


def clock_position(heat: np.ndarray, axis=(0.5, 0.5), keep: float = 0.5) -> dict:
    """The map's clock position around `axis` (x, y fractions): from the mass above uniform of the patches
    away from the axis, {'hour', 'from', 'to', 'angle_deg'}: the clockwise run of hour sectors around the
    heaviest holding >= keep x its mass (from == to for a localised defect) and the mean direction of the mass
    in that run. None if the map is flat."""
    heat = np.asarray(heat, np.float64)
    g = heat.shape[0]
    xs, ys = patch_centres(g)
    excess = np.maximum(heat - 1.0 / heat.size, 0.0)
    away = np.hypot(xs - axis[0], ys - axis[1]) > CENTRE_RADIUS
    w = np.where(away, excess, 0.0).ravel()
    if not w.sum() > 0:
        return None
    a = clock.angles(xs.ravel(), ys.ravel(), axis)
    lo, hi = clock.sector_span(a, w, keep)
    # the hour is the mean direction of the mass inside the span only, so it always lies within from-to
    # (mass elsewhere, e.g. on the camera's overlay, must not pull it out of the span)
    hours = np.asarray([clock.hour(v) for v in a])
    inside = ((hours - lo) % 12) <= ((hi - lo) % 12)
    mean = clock.circular_mean(a[inside], w[inside])
    return {"hour": clock.hour(mean), "from": lo, "to": hi, "angle_deg": round(mean, 1)}


def clock_text(position) -> str:
    """'3' or '2-4' (from-to, clockwise), '' when there is none."""
    if not position:
        return ""
    if position["from"] == position["to"]:
        return str(position["hour"])
    return f"{position['from']}-{position['to']}"


def colorize(heat: np.ndarray, size: tuple) -> np.ndarray:
    """uint8 [H, W, 3] of a map scaled to its own maximum, resized bilinearly to size (W, H)."""
    heat = np.asarray(heat, np.float32)
    top = float(heat.max())
    unit = heat / top if top > 0 else heat
    big = np.asarray(Image.fromarray(unit, "F").resize(tuple(size), Image.BILINEAR), np.float32).clip(0, 1)
    pos = big * (len(_RAMP) - 1)
    i = np.minimum(pos.astype(np.int32), len(_RAMP) - 2)
    f = (pos - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).round().astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 [H, W, 3]: the picture blended with its colorised map (alpha of the map)."""
    image = np.asarray(image, np.uint8)
    colour = colorize(heat, (image.shape[1], image.shape[0])).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colour * alpha).round().clip(0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(pixels: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def parse_axis(text: str) -> tuple:
    """--axis X,Y: the pipe axis as fractions of the picture's width and height (0..1); InputError otherwise."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--axis {text!r}: expected X,Y fractions of the width and height, e.g. 0.5,0.45") from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise InputError(f"--axis {text!r}: X and Y must lie in 0..1 (fractions of the width and height)")
    return x, y
