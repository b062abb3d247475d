"""A reviewer that knows the truth: review a video's events against planted defects (the demo's stand-in
for a person). Every decision goes through sfr_jax.review.record, as the review page's would."""
from __future__ import annotations

import collections
import json
import os

from sfr_jax.review import record


def overlaps(a_start: float, a_end: float, b_start: float, b_end: float) -> bool:
    """Whether two closed time intervals share at least one instant."""
    return a_start <= b_end and b_start <= a_end


def review_against_truth(folder: str, planted, *, mark_reviewed: bool = True, now=None) -> dict:
    """Decide every model event of `folder` (an inspect output folder) by the planted truth, a list of
    objects with code, start_s and end_s (e.g. synthetic_video.Planted): an event overlapping a planted
    defect of its class is accepted; one overlapping only defects of other classes is relabelled to the
    one it overlaps most; the rest are rejected; a planted defect that no accepted or relabelled event of
    its class overlaps is added over its interval; then (by default) the video is marked fully reviewed.
    Returns the count of each action taken."""
    with open(os.path.join(folder, record.EVENTS), encoding="utf-8") as handle:
        events = json.load(handle)
    planted = list(planted)
    classes = tuple(p.code for p in planted)
    counts = collections.Counter()
    covered = set()
    for number, event in enumerate(events["events"]):
        start, end = float(event["start_s"]), float(event["end_s"])
        hits = [i for i, p in enumerate(planted) if overlaps(start, end, p.start_s, p.end_s)]
        same = [i for i in hits if planted[i].code == event["class"]]
        if same:
            decision = {"action": "accept", "event": str(number + 1)}
            covered.update(same)
        elif hits:
            best = max(hits, key=lambda i: min(end, planted[i].end_s) - max(start, planted[i].start_s))
            decision = {"action": "relabel", "event": str(number + 1), "class": planted[best].code}
            covered.add(best)
        else:
            decision = {"action": "reject", "event": str(number + 1)}
        record.append(folder, decision, classes, now=now)
        counts[decision["action"]] += 1
    for i, p in enumerate(planted):
        if i not in covered:
            record.append(folder, {"action": "add", "class": p.code, "start_s": float(p.start_s),
                                   "end_s": float(min(p.end_s, events.get("duration_s") or p.end_s))},
                          classes, now=now)
            counts["add"] += 1
    if mark_reviewed:
        record.append(folder, {"action": "reviewed", "value": True}, now=now)
    return dict(counts)
