"""What an inspected synthetic video scores against its planted truth: defects found, false alarms per
minute, F1-Normal and one class's AP over the sampled frames, and each tier's precision (the demo's
before/after table of the review loop)."""
from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

from sfr_jax.eval.metrics import average_precision, sewer_benchmark_fired
from sfr_jax.inspection import compare, run

TIERS = ("confident", "review")


@dataclasses.dataclass(frozen=True)
class Samples:
    """The sampled frames of one inspect output folder (frames.csv): time, class probabilities, the classes
    that fired (either tier) and the quality gate's flag."""

    codes: tuple
    times: np.ndarray  # [N]
    probabilities: np.ndarray  # [N, C]
    fired: np.ndarray  # [N, C] bool
    flagged: np.ndarray  # [N] bool


def read_samples(folder: str, codes) -> Samples:
    """frames.csv of an inspect output folder as arrays; `codes`: its class columns (events.json's classes)."""
    codes = tuple(codes)
    with open(os.path.join(folder, run.FRAMES), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fired = [set(r["confident"].split()) | set(r["review"].split()) for r in rows]
    return Samples(codes, np.array([float(r["time_s"]) for r in rows]),
                   np.array([[float(r[c]) for c in codes] for r in rows]).reshape(len(rows), len(codes)),
                   np.array([[c in f for c in codes] for f in fired], bool).reshape(len(rows), len(codes)),
                   np.array([r["flagged"] == "1" for r in rows], bool))


def planted_labels(planted, codes, times) -> np.ndarray:
    """[N, C] 0/1: which planted defects are in the picture at each time (start_s <= t < end_s, as drawn)."""
    labels = np.zeros((len(times), len(codes)), np.int32)
    for p in planted:
        labels[:, codes.index(p.code)] |= (times >= p.start_s) & (times < p.end_s)
    return labels


def tier_precision(events: list, planted) -> dict:
    """{tier: {events, true, precision}}: an event is true when it overlaps a planted defect of its class
    (compare.match's rule); precision is None for a tier without events."""
    out = {}
    for tier in TIERS:
        mine = [e for e in events if e.tier == tier]
        _, false_alarms = compare.match(planted, mine)
        true = len(mine) - len(false_alarms)
        out[tier] = {"events": len(mine), "true": true, "precision": true / len(mine) if mine else None}
    return out


def video_figures(folder: str, planted, duration_s: float, code: str) -> dict:
    """Figures of one inspected video: planted found, false alarms per minute, F1-Normal over the frames
    the quality gate passed (normal = no class fires / nothing planted), `code`'s AP over those frames, and
    the tiers' precision."""
    with open(os.path.join(folder, run.EVENTS_JSON), encoding="utf-8") as handle:
        document = json.load(handle)
    codes, events = document["classes"], compare.events_of(document)
    matches, false_alarms = compare.match(planted, events)
    samples = read_samples(folder, codes)
    keep = ~samples.flagged
    labels = planted_labels(planted, list(samples.codes), samples.times)[keep]
    bench = sewer_benchmark_fired(samples.fired[keep], labels, np.ones(len(samples.codes)))
    column = samples.codes.index(code)
    ap = average_precision(samples.probabilities[keep][:, [column]], labels[:, [column]])[0]
    return {"planted": len(matches), "found": sum(m.found for m in matches), "false_alarms": len(false_alarms),
            "false_alarms_per_min": 60.0 * len(false_alarms) / duration_s, "f1_normal": bench["F1_normal"],
            "ap": None if np.isnan(ap) else float(ap), "frames": int(keep.sum()),
            "tiers": tier_precision(events, planted)}

