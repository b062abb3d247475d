"""A procedural mini Sewer-ML in the real raw format: PNG frames of real Sewer-ML sizes and official CSVs.

Each frame is a pipe interior seen along its axis (perspective, joints, water at the bottom) with the
labelled defects drawn as distinct motifs. Frame i depends only on (seed, i). Style 'cctv' is dim, noisy,
blurred and vignetted (the target domain); 'web' is the same scene clean and bright (the pre-training
domain of the demo's tiny CLIP).
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from sfr_jax import cli
from sfr_jax.data.raw import SEWERML_OFFICIAL_HEADER
from sfr_jax.errors import InputError
from sfr_jax.fileio import atomic_path, atomic_write, ensure_dir, remove_stale_temps_in

CODES = ("RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF", "BE", "FO", "GR", "PH", "PB", "OS", "OP", "OK")
# Relative frequency of each class among defect images; the five unseen classes (PB IS OP FO OS) are the
# rarest, as in Sewer-ML.
PRIOR = {"RB": 0.22, "OB": 0.10, "PF": 0.06, "DE": 0.06, "FS": 0.12, "RO": 0.09, "IN": 0.07, "AF": 0.12,
         "BE": 0.10, "GR": 0.08, "PH": 0.07, "OK": 0.06, "PB": 0.035, "IS": 0.035, "OP": 0.03, "FO": 0.035,
         "OS": 0.03}
# Frame sizes (width, height) of the Sewer-ML videos and how common each is here.
REAL_SIZES = ((352, 288), (720, 576), (350, 284), (480, 576), (466, 568), (768, 576))
SIZE_WEIGHTS = (0.45, 0.25, 0.1, 0.08, 0.06, 0.06)
WATER_LEVELS = (0, 5, 10, 15, 20, 30, 40)
WALLS = ((150, 148, 140), (168, 112, 72), (196, 188, 160), (128, 126, 122))


class _Scene:
    """Tunnel geometry: a wall point at angle t (0 = bottom) and depth d projects to (x, y)."""

    def __init__(self, rng, width, height, squash):
        self.w, self.h = width, height
        self.cx = width * (0.5 + rng.uniform(-0.06, 0.06))
        self.cy = height * (0.5 + rng.uniform(-0.06, 0.06))
        self.r = 0.62 * height
        self.sx, self.sy = squash

    def project(self, t, d):
        return self.cx + self.sx * self.r * math.sin(t) / d, self.cy + self.sy * self.r * math.cos(t) / d

    def radius(self, d):
        return self.r / d

    @staticmethod
    def light(d):
        return float(np.clip((1.5 / d) ** 1.1, 0.0, 1.0)) * 0.95 + 0.05


def _shade(color, d, scale=1.0):
    k = _Scene.light(d) * scale
    return tuple(int(np.clip(c * k, 0, 255)) for c in color)


def _background(rng, scene: _Scene, water_level: float, wall, travel: float = 0.0) -> tuple:
    """Wall with texture and joints, water at the bottom; returns (float image HxWx3, joint depths).

    `travel` moves the camera that far down the pipe (depth units): texture, joints and ripples shift, the
    lighting (which follows the camera) does not."""
    h, w = scene.h, scene.w
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = (xs - scene.cx) / (scene.sx * scene.r)
    dy = (ys - scene.cy) / (scene.sy * scene.r)
    rho = np.maximum(np.sqrt(dx * dx + dy * dy), 1e-3)
    depth = 1.0 / rho
    v = dy / rho
    theta = np.arctan2(dx, dy)
    light = np.clip((1.5 / depth) ** 1.1, 0, 1) * 0.95 + 0.05
    # texture: two blocky random grids indexed by (angle, depth)
    grid = rng.uniform(0.85, 1.15, (2, 48, 48)).astype(np.float32)
    ti = ((theta + np.pi) / (2 * np.pi) * 48).astype(np.int32) % 48
    along = depth + travel  # depth in the pipe's own frame
    tex = grid[0, ti, (along * 6).astype(np.int32) % 48] * grid[1, (ti * 3) % 48, (along * 17).astype(np.int32) % 48]
    tex = 1.0 + (tex - 1.0) * 0.3
    spacing = rng.uniform(0.9, 1.6)
    offset = rng.uniform(0, spacing)
    phase = np.abs(((along - offset) / spacing + 0.5) % 1.0 - 0.5) * spacing
    joint = np.where(phase < 0.035, 0.5, 1.0)
    image = np.asarray(wall, np.float32)[None, None] * (light * tex * joint)[..., None]
    if water_level > 0:
        water = v > 1.0 - 2.0 * water_level
        ripple = 0.9 + 0.2 * (np.sin(along * 25 + xs * 0.05) > 0.85)
        water_color = np.asarray((70, 66, 48), np.float32)[None, None] * (light * ripple)[..., None]
        image = np.where(water[..., None], water_color, image)
    far = depth > rng.uniform(7, 11)
    image[far] *= 0.15
    first = (offset - travel) % spacing if travel else offset
    joints = [first + k * spacing for k in range(1, 8) if first + k * spacing < 6]
    return image, joints


def _jagged(rng, scene, t, d, steps, dt, dd, jitter):
    points = []
    for _ in range(steps):
        points.append(scene.project(t, d))
        t += dt + rng.normal(0, jitter)
        d = max(0.7, d + dd + rng.normal(0, jitter * 0.5))
    return points


def _blob(rng, cx, cy, radius, n=9):
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.6, 1.2, n)
    return [(cx + r * math.cos(a), cy + r * math.sin(a) * 0.7) for a, r in zip(angles, radii)]


def _side(rng):
    """An angle on the left or right wall (0 = bottom, pi = top)."""
    return rng.choice([-1, 1]) * rng.uniform(0.45 * np.pi, 0.75 * np.pi)


def _draw_defect(code, rng, draw: ImageDraw.ImageDraw, scene: _Scene, joints, unit):
    """Draw one class's motif; unit is the stroke width of one pixel at 192 px frame height."""
    near = [d for d in joints if 1.0 <= d <= 2.2]
    joint = float(rng.choice(near)) if near else rng.uniform(1.1, 1.8)
    lw = lambda k=1.0: max(1, int(round(unit * k)))  # noqa: E731
    if code == "RB":  # cracks: dark jagged lines along the wall
        for _ in range(rng.integers(1, 4)):
            pts = _jagged(rng, scene, rng.uniform(-np.pi, np.pi), rng.uniform(0.9, 2.0), 14, 0.0, 0.12, 0.08)
            draw.line(pts, fill=(18, 16, 14), width=lw(2))
    elif code == "OB":  # surface damage: rough speckled patch
        t, d = rng.uniform(0.6, 2.6) * rng.choice([-1, 1]), rng.uniform(1.0, 2.2)
        x, y = scene.project(t, d)
        size = scene.radius(d) * 0.35
        for _ in range(60):
            px, py = x + rng.normal(0, size * 0.5), y + rng.normal(0, size * 0.5)
            r = rng.uniform(0.5, 2.0) * unit
            tone = int(rng.choice([40, 200]))
            draw.ellipse([px - r, py - r, px + r, py + r], fill=_shade((tone, tone, tone - 10), d))
    elif code == "PF":  # production error: a light ridge running along the pipe
        t = rng.uniform(-np.pi, np.pi)
        draw.line([scene.project(t, d) for d in np.linspace(0.9, 5, 12)], fill=_shade((235, 225, 200), 1.2), width=lw(5))
    elif code == "DE":  # deformation: the squashed cross-section is set in the scene; add a bulge line
        t = 0.0 if rng.uniform() < 0.5 else np.pi
        draw.arc(_ellipse_box(scene, 1.3), 0, 360, fill=_shade((40, 36, 30), 1.3), width=lw(2))
    elif code == "FS":  # displaced joint: ring with offset centre and a dark crescent gap
        dx, dy = rng.uniform(-0.12, 0.12) * scene.r / joint, rng.uniform(-0.12, 0.12) * scene.r / joint
        box = _ellipse_box(scene, joint)
        draw.ellipse([box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy], outline=(8, 8, 8), width=lw(5))
        draw.ellipse(box, outline=_shade((190, 185, 170), joint), width=lw(2))
    elif code == "IS":  # intruding sealing ring: a band hanging into the pipe from a joint
        box = _ellipse_box(scene, joint * 1.12)
        start = rng.uniform(120, 300)
        color = (12, 12, 12) if rng.uniform() < 0.5 else (230, 230, 220)
        draw.arc(box, start, start + rng.uniform(90, 160), fill=color, width=lw(9))
    elif code == "RO":  # roots: branching brown strands from a joint
        def branch(x, y, angle, length, width, depth):
            if depth == 0 or length < 2:
                return
            x2, y2 = x + length * math.cos(angle), y + length * math.sin(angle)
            draw.line([(x, y), (x2, y2)], fill=(112, 78, 40), width=max(1, int(width)))
            for _ in range(2):
                branch(x2, y2, angle + rng.normal(0, 0.6), length * 0.7, width * 0.7, depth - 1)

        t = rng.uniform(0.5 * np.pi, 1.5 * np.pi)
        x, y = scene.project(t, joint)
        toward = math.atan2(scene.cy - y, scene.cx - x)
        for _ in range(rng.integers(2, 4)):
            branch(x, y, toward + rng.normal(0, 0.5), scene.radius(joint) * 0.45, unit * 5, 4)
    elif code == "IN":  # infiltration: wet streaks running down the wall, glinting drops
        for _ in range(rng.integers(3, 7)):
            t = rng.uniform(0.5 * np.pi, 1.5 * np.pi) * rng.choice([-1, 1])
            x, y = scene.project(t, joint)
            length = scene.radius(joint) * rng.uniform(0.3, 0.7)
            draw.line([(x, y), (x + rng.normal(0, 2), y + length)], fill=_shade((170, 215, 235), 1.0), width=lw(3))
            draw.ellipse([x - lw(3), y + length - lw(3), x + lw(3), y + length + lw(3)], fill=(245, 250, 255))
    elif code == "AF":  # settled deposits: blobs on the pipe bottom
        for _ in range(rng.integers(2, 5)):
            d = rng.uniform(1.0, 3.0)
            x, y = scene.project(rng.normal(0, 0.3), d)
            draw.polygon(_blob(rng, x, y, scene.radius(d) * 0.22), fill=_shade((120, 100, 70), d))
    elif code == "BE":  # attached deposits: crusty pale patches on the upper wall
        for _ in range(rng.integers(2, 5)):
            d = rng.uniform(1.0, 2.5)
            x, y = scene.project(np.pi + rng.normal(0, 0.7), d)
            draw.polygon(_blob(rng, x, y, scene.radius(d) * 0.15), fill=_shade((220, 210, 150), d))
    elif code == "FO":  # obstacle: a solid block lying in the pipe
        d = rng.uniform(1.6, 2.6)
        x, y = scene.project(rng.normal(0, 0.2), d)
        s = scene.radius(d) * 0.45
        draw.rectangle([x - s, y - 1.2 * s, x + s, y], fill=_shade((170, 60, 40), d), outline=(20, 10, 5), width=lw(2))
        draw.line([(x - s, y - 0.6 * s), (x + s, y - 0.6 * s)], fill=(60, 20, 10), width=lw())
    elif code in ("GR", "PH", "PB", "OS", "OP", "OK"):  # connections: dark openings on the side wall
        d = rng.uniform(1.2, 2.4)
        x, y = scene.project(_side(rng), d)
        r = scene.radius(d) * rng.uniform(0.18, 0.26)
        box = [x - r * 0.8, y - r, x + r * 0.8, y + r]
        if code == "GR":  # branch pipe: proper fitting with a thick light rim
            draw.ellipse(box, fill=(5, 5, 5), outline=_shade((210, 205, 195), d), width=lw(4))
        elif code == "PH":  # chiselled: jagged irregular edge
            draw.polygon(_blob(rng, x, y, r, n=16), fill=(6, 6, 6), outline=_shade((90, 80, 70), d))
        elif code == "PB":  # drilled: clean thin round edge
            draw.ellipse(box, fill=(6, 6, 6), outline=_shade((235, 235, 235), d), width=lw())
        elif code == "OS":  # reinstatement cut in a liner: white liner ring with cut marks
            draw.ellipse([box[0] - r * 0.3, box[1] - r * 0.3, box[2] + r * 0.3, box[3] + r * 0.3], fill=(238, 238, 230))
            draw.ellipse(box, fill=(6, 6, 6))
            for k in range(6):
                a = k * np.pi / 3
                draw.line([(x + r * 0.8 * math.cos(a), y + r * math.sin(a)),
                           (x + r * 1.25 * math.cos(a), y + r * 1.3 * math.sin(a))], fill=(30, 30, 30), width=lw())
        elif code == "OP":  # transition profile: a funnel, two concentric steps
            draw.ellipse(box, fill=_shade((110, 105, 95), d))
            draw.ellipse([x - r * 0.45, y - r * 0.55, x + r * 0.45, y + r * 0.55], fill=(5, 5, 5))
        else:  # OK, construction change: square opening framed by bricks
            draw.rectangle([x - r * 1.1, y - r * 1.1, x + r * 1.1, y + r * 1.1], fill=_shade((150, 70, 50), d))
            for k in range(-2, 3):
                draw.line([(x - r * 1.1, y + k * r * 0.5), (x + r * 1.1, y + k * r * 0.5)], fill=(60, 40, 30), width=lw())
            draw.rectangle([x - r * 0.7, y - r * 0.7, x + r * 0.7, y + r * 0.7], fill=(4, 4, 4))
    else:
        raise ValueError(f"no motif for class code {code!r}")


def _ellipse_box(scene, d):
    rx, ry = scene.sx * scene.radius(d), scene.sy * scene.radius(d)
    return [scene.cx - rx, scene.cy - ry, scene.cx + rx, scene.cy + ry]


def sample_labels(rng, normal_fraction: float = 0.4) -> dict:
    """A multi-label draw: normal with normal_fraction, else 1-3 classes by the imbalanced PRIOR."""
    labels = dict.fromkeys(CODES, 0)
    if rng.uniform() < normal_fraction:
        return labels
    count = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
    weights = np.asarray([PRIOR[c] for c in CODES])
    for index in rng.choice(len(CODES), size=count, replace=False, p=weights / weights.sum()):
        labels[CODES[index]] = 1
    return labels


def render(rng, labels: dict, height: int, style: str = "cctv", water_level: int = 0, *, travel: float = 0.0,
           defect_rng=None) -> Image.Image:
    """Draw one frame of height `height` (width 1.25x) showing the classes with label 1.

    Video hooks: `travel` moves the camera down the pipe (see `_background`); with `defect_rng` the motifs
    (and DE's squash) draw from it, so `rng` gives the same scene, colour cast and noise whatever the labels.
    """
    if style not in ("cctv", "web"):
        raise ValueError(f"unknown style {style!r} (expected 'cctv' or 'web')")
    width = int(round(height * 1.25))
    squash = (1.0 + rng.normal(0, 0.02), 1.0 + rng.normal(0, 0.02))
    motif_rng = rng if defect_rng is None else defect_rng
    if labels.get("DE"):
        squash = (1.0, motif_rng.uniform(0.6, 0.75)) if motif_rng.uniform() < 0.7 else \
            (motif_rng.uniform(0.65, 0.78), 1.0)
    scene = _Scene(rng, width, height, squash)
    wall = WALLS[rng.integers(len(WALLS))]
    base, joints = _background(rng, scene, water_level / 100.0, wall, travel)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    unit = height / 192.0
    for code in CODES:
        if labels.get(code):
            _draw_defect(code, motif_rng, draw, scene, joints, unit)
    pixels = np.asarray(image, np.float32)
    if style == "web":  # clean, bright, contrasty stock-photo look
        pixels = np.clip((pixels - 128) * 1.15 + 150, 0, 255)
        return Image.fromarray(pixels.astype(np.uint8))
    # CCTV: dim, colour cast, vignette, sensor noise, blur, an overlay bar
    cast = np.asarray([1.0, rng.uniform(0.9, 1.05), rng.uniform(0.7, 0.9)], np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xs - width / 2) / (width / 2)) ** 2 + ((ys - height / 2) / (height / 2)) ** 2
    vignette = np.clip(1.0 - 0.45 * r2, 0.25, 1.0)
    pixels = pixels * rng.uniform(0.45, 0.7) * cast * vignette[..., None]
    pixels += rng.normal(0, rng.uniform(4, 10), pixels.shape[:2])[..., None] * np.ones(3, np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.6, 1.2) * unit))
    draw = ImageDraw.Draw(image)
    bar_h = max(2, int(height * 0.05))
    draw.rectangle([int(width * 0.03), int(height * 0.03), int(width * 0.35), int(height * 0.03) + bar_h], fill=(200, 200, 200))
    return image


def make_frame(seed: int, index: int, *, draw_size: int = 192, save_size: str = "real", style: str = "cctv",
               normal_fraction: float = 0.4):
    """(PIL image, labels dict, water level) of frame `index`; a pure function of (seed, index, options)."""
    rng = np.random.default_rng([seed, index])
    labels = sample_labels(rng, normal_fraction)
    water = int(rng.choice(WATER_LEVELS, p=[0.2, 0.25, 0.2, 0.15, 0.1, 0.06, 0.04]))
    image = render(rng, labels, draw_size, style, water)
    if save_size == "real":
        size = REAL_SIZES[rng.choice(len(REAL_SIZES), p=SIZE_WEIGHTS)]
        image = image.resize(size, Image.BILINEAR)
    elif save_size != "draw":
        raise ValueError(f"unknown save size {save_size!r} (expected 'real' or 'draw')")
    return image, labels, water


def write(out: str, num_images: int, seed: int, *, val_fraction: float = 0.2, layout: str = "official",
          draw_size: int = 192, save_size: str = "real", style: str = "cctv", normal_fraction: float = 0.4,
          progress: bool = False) -> dict:
    """Write num_images frames and the split CSVs under out; returns {split: number of images}.

    layout 'official': SewerML_Train.csv / SewerML_Val.csv (official header), PNGs in out/images/.
    layout 'sfr': sewerml_train.csv / sewerml_test.csv (lowercase filename + codes), PNGs in out/data/.
    """
    if layout not in ("official", "sfr"):
        raise ValueError(f"unknown layout {layout!r} (expected 'official' or 'sfr')")
    image_dir = os.path.join(out, "images" if layout == "official" else "data")
    ensure_dir(image_dir)
    num_val = int(round(num_images * val_fraction))
    rows = {"train": [], "test": []}
    iterator = tqdm(range(num_images), unit="img", desc="synth") if progress else range(num_images)
    remove_stale_temps_in(image_dir)
    for index in iterator:
        image, labels, water = make_frame(seed, index, draw_size=draw_size, save_size=save_size, style=style,
                                          normal_fraction=normal_fraction)
        name = f"{index + 1:08d}.png"
        path = os.path.join(image_dir, name)
        with atomic_path(path, clean=False) as tmp:
            image.save(tmp, format="PNG", compress_level=1, compress_type=3)  # Z_RLE: smaller, as fast
        rows["train" if index < num_images - num_val else "test"].append((name, labels, water))
    files = {"official": {"train": "SewerML_Train.csv", "test": "SewerML_Val.csv"},
             "sfr": {"train": "sewerml_train.csv", "test": "sewerml_test.csv"}}[layout]
    for split, split_rows in rows.items():
        with atomic_write(os.path.join(out, files[split]), newline="") as handle:
            writer = csv.writer(handle)
            if layout == "official":
                writer.writerow(SEWERML_OFFICIAL_HEADER)
                for name, labels, water in split_rows:
                    defect = int(any(labels.values()))
                    writer.writerow([name, water, 0] + [labels[c] for c in SEWERML_OFFICIAL_HEADER[3:20]]
                                    + [1 - defect, defect])
            else:
                writer.writerow(["filename"] + list(CODES))
                for name, labels, _ in split_rows:
                    writer.writerow([name] + [labels[c] for c in CODES])
    return {split: len(split_rows) for split, split_rows in rows.items()}


@cli.verb("sfr-jax synth")
def main(argv) -> int:
    """Entry point of `sfr-jax synth`."""
    parser = cli.parser("sfr-jax synth", __doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-images", type=cli.positive_int, default=1000)
    parser.add_argument("--seed", type=cli.nonnegative_int, default=0)
    parser.add_argument("--val-fraction", type=cli.fraction, default=0.2)
    parser.add_argument("--layout", choices=["official", "sfr"], default="official")
    parser.add_argument("--draw-size", "--image-size", type=cli.positive_int, default=192, dest="draw_size",
                        help="drawing height in pixels (width is 1.25x)")
    parser.add_argument("--save-size", choices=["real", "draw"], default="real",
                        help="'real': resize to Sewer-ML frame sizes (352x288, 720x576, ...); 'draw': keep the drawing size")
    parser.add_argument("--style", choices=["cctv", "web"], default="cctv")
    parser.add_argument("--normal-fraction", type=cli.probability, default=0.4)
    args = parser.parse_args(argv)
    if args.num_images <= 0 or args.draw_size < 16 or not 0 <= args.val_fraction < 1:
        raise InputError(f"need --num-images > 0, --draw-size >= 16, 0 <= --val-fraction < 1 (got "
                         f"{args.num_images}, {args.draw_size}, {args.val_fraction})")
    counts = write(args.out, args.num_images, args.seed, val_fraction=args.val_fraction, layout=args.layout,
                   draw_size=args.draw_size, save_size=args.save_size, style=args.style,
                   normal_fraction=args.normal_fraction, progress=True)
    print(f"wrote {counts['train']} train + {counts['test']} test frames ({args.style}, {args.layout} layout) to {args.out}")
    return 0
