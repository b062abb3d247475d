"""Clock positions around the pipe axis, the inspection standards' way: looking along the pipe, 12 at the top,
3 to the right, hours 1-12. One convention for the renderer's ground truth and for the model's heatmaps.

Angles are degrees clockwise from 12 o'clock, measured in the picture around the axis (x right, y down).
"""
from __future__ import annotations

import numpy as np


def angles(xs, ys, axis) -> np.ndarray:
    """Degrees [0, 360) clockwise from 12 o'clock of points (xs, ys) around `axis` (x, y), same units."""
    dx = np.asarray(xs, np.float64) - axis[0]
    dy = np.asarray(ys, np.float64) - axis[1]
    return np.degrees(np.arctan2(dx, -dy)) % 360.0


def hour(angle_deg: float) -> int:
    """The clock hour 1-12 nearest an angle (each hour covers +-15 degrees)."""
    h = int(np.floor((float(angle_deg) % 360.0) / 30.0 + 0.5)) % 12
    return 12 if h == 0 else h


def hour_distance(a: int, b: int) -> int:
    """Hours between two clock hours the short way round (0-6)."""
    d = abs(int(a) - int(b)) % 12
    return min(d, 12 - d)


def circular_mean(angles_deg, weights=None) -> float:
    """The weighted circular mean of angles in degrees, in [0, 360)."""
    a = np.radians(np.asarray(angles_deg, np.float64))
    w = np.ones_like(a) if weights is None else np.asarray(weights, np.float64)
    return float(np.degrees(np.arctan2(np.sum(w * np.sin(a)), np.sum(w * np.cos(a)))) % 360.0)


def covered_arc(angles_deg) -> tuple:
    """(from, to) degrees, clockwise, of the smallest arc holding every angle: the circle less its largest gap."""
    a = np.sort(np.asarray(angles_deg, np.float64) % 360.0)
    if len(a) == 0:
        raise ValueError("no angles")
    gaps = np.diff(np.concatenate([a, a[:1] + 360.0]))
    k = int(np.argmax(gaps))  # the largest gap runs from a[k] clockwise to a[k + 1]
    return float(a[(k + 1) % len(a)]), float(a[k])


def sector_span(angles_deg, weights, keep: float = 0.5) -> tuple:
    """(from hour, to hour) clockwise: the run of hour sectors around the heaviest one whose mass stays
    >= keep x the heaviest's (an extended defect spans several)."""
    mass = np.zeros(12)
    for a, w in zip(np.asarray(angles_deg, np.float64), np.asarray(weights, np.float64)):
        mass[hour(a) % 12] += w
    top = int(np.argmax(mass))
    lo = hi = top
    for _ in range(11):
        if mass[(hi + 1) % 12] >= keep * mass[top] and (hi + 1) % 12 != lo:
            hi = (hi + 1) % 12
        else:
            break
    for _ in range(11):
        if mass[(lo - 1) % 12] >= keep * mass[top] and (lo - 1) % 12 != hi:
            lo = (lo - 1) % 12
        else:
            break
    return (lo or 12), (hi or 12)
