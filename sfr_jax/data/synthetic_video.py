"""A synthetic inspection video: the camera moving down a pipe in `synthetic`'s cctv style, defects present
during planted intervals, a distance counter burnt into the picture, encoded with PyAV.

Frame i (at time i / fps) is a pure function of the `VideoSpec` and i: the scene (wall, joints, colour
cast, sensor noise) comes from the seed alone and the camera position from the speed profile, so the
pixels of a frame can be rendered again to compare with what a decoder returns. A planted interval
(code, start_s, end_s) shows the class's motif in every frame with start_s <= t < end_s. The counter's look
(font, size, corner, units, decimals, box, hidden spans, glitches) is a CounterStyle; the default is the demo's.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sfr_jax import fileio
from sfr_jax.data import synthetic

# name -> (FFmpeg encoder, pixel format, encoder options, container of the file name it suits). MP4/MOV are
# written with the index first ("faststart", as web videos are), so a cut file still decodes up to the cut.
CODECS = {
    "h264": ("libx264", "yuv420p", {"crf": "20", "preset": "veryfast"}, ".mp4"),
    "mpeg4": ("mpeg4", "yuv420p", {"qscale": "3"}, ".mp4"),
    "mpeg2": ("mpeg2video", "yuv420p", {"qscale": "3"}, ".mpg"),
    "wmv2": ("wmv2", "yuv420p", {"qscale": "3"}, ".wmv"),
    "ffv1": ("ffv1", "bgr0", {}, ".mkv"),  # lossless RGB: decoded frames equal the rendered ones exactly
}
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".mpg": "mpeg",
               ".mpeg": "mpeg", ".ts": "mpegts", ".wmv": "asf"}
SPEED_PERIOD_S = 20.0  # the camera's speed swings over this period, so distance is not linear in time
SPEED_SWING = 0.6  # +- this fraction of the mean speed


@dataclasses.dataclass(frozen=True)
class Planted:
    """A class's motif is in the picture for start_s <= t < end_s."""

    code: str
    start_s: float
    end_s: float


@dataclasses.dataclass(frozen=True)
class VideoSpec:
    """Everything that decides the pixels of a synthetic inspection video."""

    seed: int = 0
    duration_s: float = 20.0
    fps: float = 5.0
    size: tuple = (720, 576)  # (width, height) of the encoded frames
    draw_height: int = 192  # the scene is drawn at this height, then resized to `size`
    planted: tuple = ()  # Planted intervals
    speed_m_s: float = 0.15  # mean camera speed; pipe depth units are metres
    start_m: float = 0.0
    water_level: int = 10  # percent of the pipe height
    counter: bool = True  # the distance counter overlay
    counter_style: "CounterStyle" = None  # None: CounterStyle() (the demo's)

    def __post_init__(self):
        if self.counter_style is None:
            object.__setattr__(self, "counter_style", CounterStyle())

    @property
    def num_frames(self) -> int:
        return int(round(self.duration_s * self.fps))


def distance_at(spec: VideoSpec, t: float) -> float:
    """Metres the camera has travelled at time t: speed v (1 + swing sin(2 pi t / P)), integrated."""
    w = 2 * math.pi / SPEED_PERIOD_S
    return spec.start_m + spec.speed_m_s * (t + SPEED_SWING * (1 - math.cos(w * t)) / w)


def labels_at(spec: VideoSpec, t: float) -> dict:
    """{code: 1} of the planted intervals that hold time t."""
    return {p.code: 1 for p in spec.planted if p.start_s <= t < p.end_s}


@dataclasses.dataclass(frozen=True)
class CounterStyle:
    """How the distance counter is burnt in. The defaults are the demo's counter (bottom left, PIL's default
    font at 4.5 % of the frame height, light text on a black box, `  12.34 m`)."""

    font: str = "default"  # a key of FONTS
    size: float = 0.045  # text height as a fraction of the frame height
    corner: str = "bottom-left"  # top-left, top-right, bottom-left, bottom-right
    units: str = "m"  # written after the number with a space; "" for none
    decimals: int = 2
    box: str = "dark"  # "dark": light text on a black box; "light": dark text on a white box
    hidden: tuple = ()  # (start_s, end_s) intervals in which no counter is drawn
    shown: tuple = ()  # (start_s, end_s, metres): a wrong value on screen (a glitch) in that interval

    def __post_init__(self):
        if self.font not in FONTS or self.corner not in CORNERS or self.box not in ("dark", "light") or \
                not 0 <= self.decimals <= 3 or self.units not in ("m", ""):
            raise ValueError(f"bad counter style {self}: font in {tuple(FONTS)}, corner in {CORNERS}, box dark "
                             "or light, 0-3 decimals, units m or empty")

    def text(self, metres: float) -> str:
        """The counter's text at `metres`, right-aligned in 7 characters as the demo's is."""
        return f"{metres:7.{self.decimals}f}" + (f" {self.units}" if self.units else "")

    def value_at(self, t: float, metres: float) -> float | None:
        """What the counter shows at time t (None: hidden)."""
        if any(a <= t < b for a, b in self.hidden):
            return None
        return next((m for a, b, m in self.shown if a <= t < b), metres)


# Fonts that need nothing fetched: PIL's own default (Aileron, inside Pillow) and Debian's fonts-dejavu-core,
# used only where installed (dejavu_fonts_present()).
DEJAVU = "/usr/share/fonts/truetype/dejavu"
FONTS = {"default": None, "dejavu-sans": "DejaVuSans.ttf", "dejavu-sans-bold": "DejaVuSans-Bold.ttf",
         "dejavu-mono": "DejaVuSansMono.ttf"}
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def dejavu_fonts_present() -> bool:
    """Whether Debian's DejaVu fonts (fonts-dejavu-core) are installed where FONTS expects them."""
    return all(os.path.isfile(os.path.join(DEJAVU, f)) for f in FONTS.values() if f)


def _counter_font(height: int, style: CounterStyle):
    pixels = max(8, int(round(height * style.size)))
    if FONTS[style.font] is None:
        return ImageFont.load_default(size=pixels)
    if not dejavu_fonts_present():
        raise FileNotFoundError(f"counter font {style.font!r}: no DejaVu fonts in {DEJAVU} (apt-get install "
                                "fonts-dejavu-core), or use font='default'")
    return ImageFont.truetype(os.path.join(DEJAVU, FONTS[style.font]), pixels)


def draw_counter(image: Image.Image, metres: float, t: float, style: CounterStyle) -> None:
    """Burn the counter into `image` (in place) as `style` says, unless it is hidden at time t."""
    value = style.value_at(t, metres)
    if value is None:
        return
    width, height = image.size
    draw = ImageDraw.Draw(image)
    text = style.text(value)
    font = _counter_font(height, style)
    _, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    left_side, top_side = style.corner.endswith("left"), style.corner.startswith("top")
    x = int(width * 0.04) if left_side else int(width * 0.96) - right
    y = int(height * 0.06) - top if top_side else int(height * 0.94) - (bottom - top)
    fill, ink = ((0, 0, 0), (235, 235, 235)) if style.box == "dark" else ((240, 240, 240), (15, 15, 15))
    draw.rectangle([x - 4, y + top - 3, x + right + 4, y + bottom + 3], fill=fill)
    draw.text((x, y), text, fill=ink, font=font)


def render_frame(spec: VideoSpec, index: int, planted: list | None = None) -> np.ndarray:
    """[H, W, 3] uint8 RGB of frame `index`, as encoded (before any lossy codec). With a `planted` list, the
    synthetic.Region of each defect drawn in it is appended (box, clock position: fractions, any frame size)."""
    t = index / spec.fps
    metres = distance_at(spec, t)
    image = synthetic.render(np.random.default_rng([spec.seed, 0]), labels_at(spec, t), spec.draw_height,
                             "cctv", spec.water_level, travel=metres - spec.start_m,
                             defect_rng=np.random.default_rng([spec.seed, 1]), planted=planted)
    image = image.resize(tuple(spec.size), Image.BILINEAR)
    if spec.counter:
        draw_counter(image, metres, t, spec.counter_style)
    return np.asarray(image, dtype=np.uint8)


def distance_table(spec: VideoSpec, step_s: float = 0.5) -> list:
    """[(time_s, distance_m)] every step_s from 0 to the end (the last frame's time included)."""
    end = (spec.num_frames - 1) / spec.fps
    times = list(np.arange(0.0, end, step_s)) + [end]
    return [(round(float(t), 6), round(distance_at(spec, float(t)), 6)) for t in times]


def write_distance_csv(path: str, table) -> str:
    """The time->distance sidecar `inspect --distance` reads: header time_s,distance_m."""
    with fileio.atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", "distance_m"])
        writer.writerows(table)
    return os.path.abspath(path)


def write_video(path: str, spec: VideoSpec, codec: str = "h264") -> str:
    """Encode the video to `path` (container from its extension) with one of CODECS; returns the path."""
    import av

    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r} (expected one of {', '.join(CODECS)})")
    encoder, pix_fmt, options, _ = CODECS[codec]
    extension = os.path.splitext(path)[1].lower()
    if extension not in _CONTAINERS:
        raise ValueError(f"{path}: no container for extension {extension!r} ({', '.join(_CONTAINERS)})")
    rate = Fraction(spec.fps).limit_denominator(1001)
    with fileio.atomic_path(path) as tmp:
        faststart = {"movflags": "faststart"} if _CONTAINERS[extension] in ("mp4", "mov") else {}
        with av.open(tmp, mode="w", format=_CONTAINERS[extension], options=faststart) as container:
            stream = container.add_stream(encoder, rate=rate, options=dict(options))
            stream.width, stream.height = spec.size
            stream.pix_fmt = pix_fmt
            for index in range(spec.num_frames):
                frame = av.VideoFrame.from_ndarray(render_frame(spec, index), format="rgb24")
                frame.pts = index
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return os.path.abspath(path)
