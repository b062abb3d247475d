"""Counter readings over time -> distances: reject the implausible, smooth, keep monotone, fill the gaps.

Given the number read on each sample (NaN where none was), in order:
  1. range: a reading outside [min_m, max_m] (0-500 m by default, as sewer-studio's) is rejected.
  2. jumps: a reading that its neighbours (up to `neighbours` accepted readings on each side) could not reach
     at `max_speed_m_s` (plus `slack_m` for the counter's rounding) is rejected when it disagrees with more of
     them than it agrees with: one misread digit (12.34 -> 72.34) goes, a steady run stays.
  3. smoothing: a running median over `smooth` accepted readings (events.running_median); on a monotone run
     it changes nothing, an isolated glitch that passed step 2 goes.
  4. monotone within a tolerance: the camera moves forward; a reading more than `backtrack_m` below the
     highest so far is rejected, one within it is held at that highest (a counter that dithers).
  5. gaps: a sample without an accepted reading (unreadable, hidden, rejected) gets the linear interpolation
     of the accepted readings around it, "interpolated"; before the first or after the last there is no
     distance (none), rather than a guess.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sfr_jax.inspection.events import running_median

OCR, INTERPOLATED, NONE = "ocr", "interpolated", ""


@dataclasses.dataclass(frozen=True)
class OdometerConfig:
    """Plausibility rules of counter readings (module docstring)."""

    min_m: float = 0.0
    max_m: float = 500.0
    max_speed_m_s: float = 1.0  # crawler cameras move at 0.1-0.3 m/s; twice the fastest still rejects misreads
    slack_m: float = 0.1
    neighbours: int = 2
    smooth: int = 3
    backtrack_m: float = 0.3

    def __post_init__(self):
        if not self.min_m < self.max_m or not self.max_speed_m_s > 0 or self.smooth < 1 or self.smooth % 2 == 0 \
                or self.backtrack_m < 0 or self.slack_m < 0 or self.neighbours < 1:
            raise ValueError(f"need min_m < max_m, max_speed_m_s > 0, an odd smooth >= 1, backtrack_m >= 0, "
                             f"slack_m >= 0, neighbours >= 1; got {self}")


@dataclasses.dataclass
class Cleaned:
    """Per sample: distance (NaN: none) and its kind (OCR, INTERPOLATED, NONE); counts of what was dropped."""

    distances: np.ndarray
    kinds: list
    read: int  # samples with a number on screen
    rejected: dict  # why -> count: range, jump, backward

    @property
    def accepted(self) -> int:
        return sum(k == OCR for k in self.kinds)


def _jump_outliers(times: np.ndarray, values: np.ndarray, config: OdometerConfig) -> np.ndarray:
    """bool [n]: readings more neighbours cannot reach at max speed than can (step 2)."""
    n, out = len(values), np.zeros(len(values), bool)
    for i in range(n):
        others = [j for j in range(max(0, i - config.neighbours), min(n, i + config.neighbours + 1)) if j != i]
        reach = config.max_speed_m_s * np.abs(times[others] - times[i]) + config.slack_m
        agree = np.abs(values[others] - values[i]) <= reach
        out[i] = (~agree).sum() > agree.sum()
    return out


def clean(times, readings, config: OdometerConfig = OdometerConfig()) -> Cleaned:
    """The distance of every sample from its counter reading (NaN: none read), as the module docstring says."""
    times = np.asarray(times, dtype=np.float64)
    readings = np.asarray(readings, dtype=np.float64)
    read = np.isfinite(readings)
    keep = read & (readings >= config.min_m) & (readings <= config.max_m)
    rejected = {"range": int((read & ~keep).sum())}
    index = np.flatnonzero(keep)
    jumps = _jump_outliers(times[index], readings[index], config)
    rejected["jump"] = int(jumps.sum())
    index = index[~jumps]
    values = running_median(readings[index], config.smooth) if len(index) else readings[index]
    highest, monotone, backward = -np.inf, [], 0
    for position, value in zip(index, values):
        if value < highest - config.backtrack_m:
            backward += 1
            continue
        highest = max(highest, value)
        monotone.append((position, highest))
    rejected["backward"] = backward
    distances, kinds = np.full(len(times), np.nan), [NONE] * len(times)
    if monotone:
        at, value = (np.asarray(v) for v in zip(*monotone))
        inside = (times >= times[at[0]]) & (times <= times[at[-1]])
        distances[inside] = np.interp(times[inside], times[at], value)
        for i in np.flatnonzero(inside):
            kinds[i] = INTERPOLATED
        distances[at] = value
        for i in at:
            kinds[i] = OCR
    return Cleaned(distances, kinds, int(read.sum()), rejected)
