"""Per-class defect events from probabilities over time.

For each class, over the samples that passed the quality gate (flagged ones are left out, as if not there):
  1. smoothing: a running median over `smooth` samples (centred; the ends padded with the first and last
     value). On a 0/1 signal a median of k is a majority vote: a run shorter than (k + 1) / 2 samples goes,
     a gap that short closes, a step stays where it was.
  2. hysteresis: a class turns on where the smoothed probability reaches its decision threshold t and off
     where it falls below t * (1 - margin), so a probability hovering at the threshold does not flicker. The
     margin is relative: calibrated thresholds range from a few per cent to near 1, and an absolute margin
     would keep a class with a low threshold on forever.
  3. runs: each maximal run of "on" samples is a run; runs of the class whose gap (next start - previous
     end) is at most `merge_gap_s` are merged into one event.
  4. an event starts at its first and ends at its last firing sample; its peak is the highest raw
     (unsmoothed) probability among its samples, with that sample's time (the key frame). An event shorter
     than `point_below_s` is a point observation, a longer one continuous.
"""
from __future__ import annotations

import dataclasses

import numpy as np

POINT, CONTINUOUS = "point", "continuous"


@dataclasses.dataclass(frozen=True)
class EventConfig:
    """How decisions over time become events (module docstring)."""

    smooth: int = 3
    margin: float = 0.2  # a fraction of the threshold
    merge_gap_s: float = 2.0
    point_below_s: float = 2.0

    def __post_init__(self):
        if self.smooth < 1 or self.smooth % 2 == 0:
            raise ValueError(f"smooth must be an odd number of samples >= 1, got {self.smooth}")
        if not 0 <= self.margin < 1 or self.merge_gap_s < 0 or self.point_below_s < 0:
            raise ValueError(f"need 0 <= margin < 1, merge_gap_s >= 0, point_below_s >= 0; got {self.margin}, "
                             f"{self.merge_gap_s}, {self.point_below_s}")


@dataclasses.dataclass
class Event:
    """One finding: a class over [start_s, end_s], its peak and (when known) distances."""

    code: str
    kind: str
    start_s: float
    end_s: float
    peak_probability: float
    peak_s: float
    peak_sample: int  # index of the key frame among all samples (flagged ones included)
    samples: int  # usable samples within the event
    start_m: float | None = None
    end_m: float | None = None
    start_m_source: str = ""  # where start_m comes from: sidecar, ocr, interpolated, length ("": no distance)
    end_m_source: str = ""
    thumbnail: str = ""  # file name under thumbnails/, set when written
    tier: str = "review"  # "confident" when the peak reaches the class's confident threshold (issue 21)
    # Where in the picture (the key frame's heatmap, when the scorer gives maps): the map's peak as fractions
    # of the width and height, and the clock position around the pipe axis (from-to for a spread one).
    peak_x: float | None = None
    peak_y: float | None = None
    clock: int | None = None
    clock_from: int | None = None
    clock_to: int | None = None
    heatmap: str = ""  # the key frame with the class's heatmap, under thumbnails/
    standard_codes: dict = dataclasses.field(default_factory=dict)  # {standard: code}, from the class file

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict:
        """The event for events.json: 'class' first, then the fields, and the duration."""
        fields = dataclasses.asdict(self)
        return {"class": fields.pop("code"), **fields, "duration_s": self.duration_s}


def running_median(values: np.ndarray, k: int) -> np.ndarray:
    """Centred median over k samples along axis 0, the ends padded with their edge value."""
    values = np.asarray(values, dtype=np.float64)
    if k == 1 or len(values) == 0:
        return values.copy()
    half = k // 2
    padded = np.concatenate([np.repeat(values[:1], half, 0), values, np.repeat(values[-1:], half, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, k, axis=0)
    return np.median(windows, axis=-1)


def hysteresis(values: np.ndarray, on: float, off: float) -> np.ndarray:
    """bool [N]: turns on at values >= on, stays on until a value < off (off <= on)."""
    state, out = False, np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        state = value >= off if state else value >= on
        out[i] = state
    return out


def runs(mask: np.ndarray) -> list:
    """[(first, last)] index pairs (inclusive) of the maximal runs of True."""
    mask = np.asarray(mask, dtype=bool)
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist()))


def merge_runs(spans: list, times: np.ndarray, max_gap_s: float) -> list:
    """Runs whose gap in time (next first - previous last) is <= max_gap_s, merged."""
    merged = []
    for first, last in spans:
        if merged and times[first] - times[merged[-1][1]] <= max_gap_s + 1e-9:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def find_events(times, probabilities, thresholds, codes, usable=None, config: EventConfig = EventConfig(),
                distance=None, confident=None) -> list:
    """Events of every class, sorted by start time then class order.

    times [N] seconds, probabilities [N, c], thresholds [c] (probability space), usable [N] bool (False:
    flagged by the quality gate), distance: an object with .at(time_s) -> metres or None and .source_at(time_s)
    -> where that distance comes from (distance.py), confident [c] the confident tier's thresholds (an event
    whose peak reaches it is `confident`; None: one tier, every event `review`).
    """
    times = np.asarray(times, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(times), len(codes))
    keep = np.flatnonzero(np.ones(len(times), bool) if usable is None else np.asarray(usable, bool))
    t, p = times[keep], probabilities[keep]
    smoothed = running_median(p, config.smooth)
    events = []
    for c, code in enumerate(codes):
        on = hysteresis(smoothed[:, c], thresholds[c], thresholds[c] * (1 - config.margin))
        for first, last in merge_runs(runs(on), t, config.merge_gap_s):
            peak = first + int(np.argmax(p[first:last + 1, c]))
            start, end = float(t[first]), float(t[last])
            event = Event(code, POINT if end - start < config.point_below_s else CONTINUOUS, start, end,
                          float(p[peak, c]), float(t[peak]), int(keep[peak]), last - first + 1)
            if confident is not None and event.peak_probability >= confident[c]:
                event.tier = "confident"
            if distance is not None:
                event.start_m, event.end_m = distance.at(start), distance.at(end)
                event.start_m_source, event.end_m_source = distance.source_at(start), distance.source_at(end)
            events.append(event)
    order = {code: i for i, code in enumerate(codes)}
    return sorted(events, key=lambda e: (e.start_s, order[e.code]))


def smoothed_probabilities(probabilities, usable, config: EventConfig) -> np.ndarray:
    """[N, c] smoothed probabilities as the events saw them (NaN at flagged samples), for the report."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    out = np.full(probabilities.shape, np.nan)
    keep = np.asarray(usable, bool)
    out[keep] = running_median(probabilities[keep], config.smooth)
    return out
