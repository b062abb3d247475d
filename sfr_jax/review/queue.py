"""The order in which a person reviews a video's events: by tier, then by how close to the threshold."""
from __future__ import annotations

import math

# `review` first: those are the decisions the model is least sure of; `confident` ones after, added last.
TIER_ORDER = {"review": 0, "confident": 1}


def closeness(event: dict, events: dict) -> float:
    """How far the event's peak lies above the threshold of its tier (the recall-oriented threshold for
    `review`, the confident one for `confident`); the smallest is the most doubtful. inf when unknown."""
    peak = event.get("peak_probability")
    code = event.get("model_class") or event.get("class")
    table = (events.get("confident_thresholds") or {}) if event.get("tier") == "confident" else \
        (events.get("thresholds") or {})
    threshold = table.get(code)
    if peak is None or threshold is None:
        return math.inf
    return abs(float(peak) - float(threshold))


def order(resolved: list, events: dict) -> list:
    """The resolved events (sfr_jax.review.record.resolved) in review order: tier, closeness, start time;
    events a person added come last, by start."""
    def key(event):
        added = event.get("model_class") is None
        return (added, TIER_ORDER.get(event.get("tier"), 2), closeness(event, events), event["start_s"])
    return sorted(resolved, key=key)
