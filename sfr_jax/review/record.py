"""review.json: what a person decided about one video's events, beside its events.json (issue 21).

The file is an audit trail: an append-only list of decisions, each with its time, the event it is about
and, for a model event, a copy of the model's original event. The current state of an event is what its
decisions say when read in order (the last verdict wins; a move changes its bounds, a relabel its class).

    {"format": "sfr-jax-review/1", "video": NAME,
     "decisions": [{"seq": 1, "at": ISO-8601, "action": "accept", "event": "3", "original": {...}}, ...]}

Actions: accept, reject (event), relabel (event, class), move (event, start_s, end_s), add (class,
start_s, end_s; creates the event "+SEQ"), reviewed (value: true/false, the whole video is reviewed, so
time outside every event counts as normal). Model events are named by their number in events.csv ("1"...).
This module is the schema: load, validate, append (atomically, under a lock), resolve.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os

from sfr_jax import fileio
from sfr_jax.errors import InputError

FORMAT = "sfr-jax-review/1"
REVIEW = "review.json"
EVENTS = "events.json"
ACTIONS = ("accept", "reject", "relabel", "move", "add", "reviewed")
# Verdicts of a resolved event; `accepted`, `relabelled` and `added` are defects, `rejected` is not.
POSITIVE = ("accepted", "relabelled", "added")
_VERDICT = {"accept": "accepted", "reject": "rejected", "relabel": "relabelled"}
_LOCK = ".review.lock"


class BadDecision(InputError):
    """A decision that does not fit the schema or the video (unknown event or class, bounds out of range)."""


def empty(video: str) -> dict:
    return {"format": FORMAT, "video": str(video), "decisions": []}


def read_events(folder: str) -> dict:
    """The video's events.json (written by `sfr-jax inspect`); InputError naming it when unusable."""
    path = os.path.join(folder, EVENTS)
    try:
        with open(path, encoding="utf-8") as handle:
            events = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable events.json of `sfr-jax inspect` ({error})") from None
    if not isinstance(events, dict) or not isinstance(events.get("events"), list):
        raise InputError(f"{path}: no 'events' list; not an events.json of `sfr-jax inspect`")
    return events


def load(folder: str) -> dict:
    """The folder's review.json, validated against its events.json; an empty record when there is none."""
    events = read_events(folder)
    path = os.path.join(folder, REVIEW)
    if not os.path.exists(path):
        return empty(events.get("video", os.path.basename(folder)))
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not readable JSON ({error})") from None
    return validate(record, events, origin=path)


def validate(record, events: dict, classes=(), origin: str = REVIEW) -> dict:
    """The record itself when every decision fits the schema and the video (in order: an added event
    exists from its decision on); InputError naming the first that does not."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"{origin}: format is not {FORMAT!r}")
    if not isinstance(record.get("decisions"), list):
        raise InputError(f"{origin}: 'decisions' is not a list")
    known = set(_model_keys(events))
    for number, decision in enumerate(record["decisions"]):
        try:
            check_decision(decision, events, known, classes, strict_classes=False)
        except BadDecision as error:
            raise InputError(f"{origin}: decision {number + 1}: {error}") from None
        if decision["action"] == "add":
            known.add(f"+{decision['seq']}")
    return record


def _model_keys(events: dict) -> list:
    return [str(n + 1) for n in range(len(events["events"]))]


def allowed_classes(events: dict, classes=()) -> list:
    """The codes a decision may name: the video's classes, then the user's (e.g. a --classes file's)."""
    out = list(events.get("classes") or [])
    out += [c for c in classes if c not in out]
    return out


def check_decision(decision, events: dict, known, classes=(), *, strict_classes: bool = True) -> None:
    """BadDecision unless `decision` is a well-formed decision about this video. `known`: the event keys
    that exist. `strict_classes`: the class must be one of allowed_classes (off when reading a file back,
    whose classes may have come from a class file not given now)."""
    if not isinstance(decision, dict):
        raise BadDecision("a decision is a JSON object")
    action = decision.get("action")
    if action not in ACTIONS:
        raise BadDecision(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if action == "reviewed":
        if not isinstance(decision.get("value"), bool):
            raise BadDecision("'reviewed' needs a value true or false")
        return
    if action != "add" and str(decision.get("event")) not in known:
        raise BadDecision(f"event {decision.get('event')!r} is not an event of video {events.get('video')!r}")
    if action in ("relabel", "add"):
        code = decision.get("class")
        if not isinstance(code, str) or not code or (strict_classes and code not in allowed_classes(events, classes)):
            raise BadDecision(f"class {code!r} is not one of {' '.join(allowed_classes(events, classes))}")
    if action in ("move", "add"):
        start, end = decision.get("start_s"), decision.get("end_s")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (start, end)):
            raise BadDecision(f"start_s {start!r} and end_s {end!r} must be numbers (seconds)")
        duration = events.get("duration_s")
        limit = float(duration) if isinstance(duration, (int, float)) and duration else math.inf
        if not 0 <= start <= end <= limit + 1e-6:
            raise BadDecision(f"start_s {start:g} and end_s {end:g} must satisfy 0 <= start <= end <= "
                              f"{limit:g} (the video's duration)")


@contextlib.contextmanager
def locked(folder: str):
    """An exclusive lock on a video's review (threads and processes alike): read-modify-write inside."""
    fileio.ensure_dir(folder)
    with open(os.path.join(folder, _LOCK), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(folder: str, decision: dict, classes=(), now=None) -> dict:
    """Validate `decision`, stamp it (seq, time, the model's original event) and append it to the folder's
    review.json, written atomically under the lock; returns the decision as stored. BadDecision (nothing
    written) when it does not fit."""
    with locked(folder):
        record = load(folder)
        events = read_events(folder)
        known = set(_model_keys(events)) | {f"+{d['seq']}" for d in record["decisions"] if d["action"] == "add"}
        check_decision(decision, events, known, classes)
        keep = ("action", "event", "class", "start_s", "end_s", "value", "note")
        stored = {key: decision[key] for key in keep if key in decision}
        if "event" in stored:
            stored["event"] = str(stored["event"])
        if stored["action"] in ("add", "reviewed"):
            stored.pop("event", None)
        seq = 1 + max((d["seq"] for d in record["decisions"]), default=0)
        at = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="milliseconds")
        stored = {"seq": seq, "at": at, **stored}
        if stored.get("event", "").isdigit():
            stored["original"] = events["events"][int(stored["event"]) - 1]
        record["decisions"].append(stored)
        fileio.write_json(os.path.join(folder, REVIEW), record)
    return stored


def fully_reviewed(record: dict) -> bool:
    """Whether the last `reviewed` decision marks the whole video as reviewed (default: no)."""
    flags = [d["value"] for d in record["decisions"] if d["action"] == "reviewed"]
    return bool(flags[-1]) if flags else False


def resolved(record: dict, events: dict) -> list:
    """The video's events as the decisions leave them, model events first (in their order) then added ones:
    {key, class, start_s, end_s, verdict ('pending', 'accepted', 'rejected', 'relabelled', 'added'),
    model_class, tier, peak_probability}, each folded from its decisions in order."""
    state = {}
    for key, event in zip(_model_keys(events), events["events"]):
        state[key] = {"key": key, "class": event["class"], "start_s": float(event["start_s"]),
                      "end_s": float(event["end_s"]), "verdict": "pending", "model_class": event["class"],
                      "tier": event.get("tier", "review"), "peak_probability": event.get("peak_probability")}
    for d in record["decisions"]:
        action = d["action"]
        if action == "add":
            key = f"+{d['seq']}"
            state[key] = {"key": key, "class": d["class"], "start_s": float(d["start_s"]),
                          "end_s": float(d["end_s"]), "verdict": "added", "model_class": None, "tier": None,
                          "peak_probability": None}
        elif action in _VERDICT:
            state[d["event"]]["verdict"] = _VERDICT[action]
            if action == "relabel":
                state[d["event"]]["class"] = d["class"]
        elif action == "move":
            state[d["event"]].update(start_s=float(d["start_s"]), end_s=float(d["end_s"]))
    return list(state.values())
