"""A reviewer that knows the truth: review a video's events against planted defects (the demo's stand-in
for a person). Every decision goes through sfr_jax.review.record, as the review page's would."""
from __future__ import annotations

import collections
import json
import os

from sfr_jax.review import record

# A planted interval's end is exclusive (the renderer draws start_s <= t < end_s) while a review's event
# holds its end frame: the reviewer marks the last instant in view, this much before the planted end.
END_INSIDE_S = 1e-3


def overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    """Whether two closed time intervals share at least one instant."""
    return a_start <= b_end and b_start <= a_end


def _shared(start: float, end: float, p) -> float:
    return max(0.0, min(end, p.end_s) - max(start, p.start_s))


def _span(hits, duration) -> tuple:
    """(start, end) of the planted intervals `hits` as a reviewer marks them (see END_INSIDE_S)."""
    end = max(p.end_s for p in hits) - END_INSIDE_S
    return float(min(p.start_s for p in hits)), float(min(end, duration) if duration else end)


def review_against_truth(folder: str, planted, *, mark_reviewed: bool = True, now=None) -> dict:
    """Decide every model event of `folder` (an inspect output folder) by the planted truth, a list of
    objects with code, start_s and end_s (e.g. synthetic_video.Planted), as a careful person would:
    - an event overlapping a planted defect of its class is accepted, and moved to where that defect is in
      view when it starts or ends elsewhere;
    - one lying mostly (over half its length) on a planted defect of another class is relabelled to that
      class and moved likewise;
    - the rest are rejected (a long false alarm that crosses a defect is a false alarm, not that defect);
    - a planted defect that no accepted or relabelled event covers is added over its interval;
    then (by default) the video is marked fully reviewed. Returns the count of each action taken."""
    with open(os.path.join(folder, record.EVENTS), encoding="utf-8") as handle:
        events = json.load(handle)
    duration = events.get("duration_s")
    planted = list(planted)
    classes = tuple(p.code for p in planted)
    counts = collections.Counter()
    covered = set()

    def decide(decision):
        record.append(folder, decision, classes, now=now)
        counts[decision["action"]] += 1

    for number, event in enumerate(events["events"]):
        key, start, end = str(number + 1), float(event["start_s"]), float(event["end_s"])
        hits = [i for i, p in enumerate(planted) if overlaps(start, end, p.start_s, p.end_s)]
        same = [i for i in hits if planted[i].code == event["class"]]
        best = max(hits, key=lambda i: _shared(start, end, planted[i])) if hits else None
        if same:
            decide({"action": "accept", "event": key})
            chosen = same
        elif best is not None and _shared(start, end, planted[best]) > 0.5 * (end - start):
            decide({"action": "relabel", "event": key, "class": planted[best].code})
            chosen = [best]
        else:
            decide({"action": "reject", "event": key})
            continue
        covered.update(chosen)
        span = _span([planted[i] for i in chosen], duration)
        if abs(span[0] - start) > END_INSIDE_S or abs(span[1] - end) > END_INSIDE_S:
            decide({"action": "move", "event": key, "start_s": span[0], "end_s": span[1]})
    for i, p in enumerate(planted):
        if i not in covered:
            start, end = _span([p], duration)
            decide({"action": "add", "class": p.code, "start_s": start, "end_s": end})
    if mark_reviewed:
        record.append(folder, {"action": "reviewed", "value": True}, now=now)
    return dict(counts)
