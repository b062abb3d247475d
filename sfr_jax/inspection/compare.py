"""Planted intervals vs found events (the demo's check on a synthetic video): which were found, how close.

`check_planted` is the whole check: render a synthetic inspection video with planted intervals and its
distance sidecar, inspect it with a scorer, and match what was found against what was planted.

A planted interval (code, start_s, end_s) is found by the events of its class that overlap it in time
(end_s is exclusive, as the renderer draws it); its found span runs from the first such event's start to the
last one's end. Events that overlap no planted interval of their class are false alarms.
"""
from __future__ import annotations

import dataclasses
import json
import os
import types

from sfr_jax.data import synthetic_video
from sfr_jax.inspection import run, sources


@dataclasses.dataclass(frozen=True)
class Match:
    """One planted interval and what was found of it (found_* None when nothing was)."""

    code: str
    planted_start_s: float
    planted_end_s: float
    found_start_s: float | None
    found_end_s: float | None
    events: int

    @property
    def found(self) -> bool:
        return self.events > 0


def _overlaps(event, start_s: float, end_s: float) -> bool:
    return event.start_s < end_s and event.end_s >= start_s


def match(planted, found) -> tuple[list, list]:
    """([Match] per planted interval, [event] false alarms); planted items have code/start_s/end_s."""
    matches, used = [], set()
    for p in planted:
        hits = [i for i, e in enumerate(found) if e.code == p.code and _overlaps(e, p.start_s, p.end_s)]
        used.update(hits)
        matches.append(Match(p.code, p.start_s, p.end_s,
                             min(found[i].start_s for i in hits) if hits else None,
                             max(found[i].end_s for i in hits) if hits else None, len(hits)))
    return matches, [e for i, e in enumerate(found) if i not in used]


def events_of(document: dict) -> list:
    """The events of an events.json document as (code, start_s, end_s, tier) records (tier 'review' where
    the run had one tier)."""
    return [types.SimpleNamespace(code=e["class"], start_s=e["start_s"], end_s=e["end_s"],
                                  tier=e.get("tier", "review"))
            for e in document["events"]]


def found_events(folder: str) -> list:
    """The events of one inspected video's output folder (events_of its events.json)."""
    with open(os.path.join(folder, run.EVENTS_JSON), encoding="utf-8") as handle:
        return events_of(json.load(handle))


def table(matches: list, false_alarms: list) -> str:
    """A plain-text table of planted vs found, then the false alarms."""
    lines = [f"{'class':<6} {'planted':>15}  {'found':>15}  events"]
    for m in matches:
        found = f"{m.found_start_s:6.1f}-{m.found_end_s:6.1f} s" if m.found else f"{'missed':>15}"
        lines.append(f"{m.code:<6} {m.planted_start_s:6.1f}-{m.planted_end_s:6.1f} s  {found}  {m.events}")
    for e in false_alarms:
        lines.append(f"{e.code:<6} {'(none)':>15}  {e.start_s:6.1f}-{e.end_s:6.1f} s  false alarm")
    return "\n".join(lines)


def check_planted(scorer, out_dir: str, spec: synthetic_video.VideoSpec, *, codec: str = "h264",
                  every_s: float = 0.5) -> tuple[list, list, str]:
    """Render `spec` to out_dir/synthetic<ext>, inspect it into out_dir/inspect/; ([Match], false alarms,
    the report's path)."""
    extension = synthetic_video.CODECS[codec][3]
    video = synthetic_video.write_video(os.path.join(out_dir, f"synthetic{extension}"), spec, codec)
    sidecar = synthetic_video.write_distance_csv(os.path.join(out_dir, "synthetic.csv"),
                                                 synthetic_video.distance_table(spec))
    inputs, _ = sources.expand([video])
    results = os.path.join(out_dir, "inspect")
    run.inspect_videos(scorer, inputs, results, run.InspectOptions(every_s=every_s, distance=sidecar,
                                                                   progress=False))
    folder = os.path.join(results, inputs[0].name)
    matches, false_alarms = match(spec.planted, found_events(folder))
    return matches, false_alarms, os.path.join(folder, run.REPORT)
