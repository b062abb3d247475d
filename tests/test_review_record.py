"""review.json (sfr_jax.review.record): decisions appended with their time and the model's original event,
the resolved events folded by hand, the fully-reviewed flag, malformed decisions refused with nothing
written, and the review queue's order."""
import datetime
import json
import os

import pytest

from sfr_jax.errors import InputError
from sfr_jax.review import queue, record
from review_fixtures import EVENTS, QUEUE, write_reports


@pytest.fixture
def folder(tmp_path):
    return os.path.join(write_reports(str(tmp_path / "reports"), video=False), "seg1")


def test_decisions_resolve_to_the_final_events(folder):
    t0 = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.timezone.utc)
    assert record.load(folder) == record.empty("seg1") and not record.fully_reviewed(record.load(folder))
    record.append(folder, {"action": "accept", "event": "2"}, now=t0)
    record.append(folder, {"action": "reject", "event": 3})
    record.append(folder, {"action": "relabel", "event": "4", "class": "XX"}, classes=("XX",))
    record.append(folder, {"action": "move", "event": "1", "start_s": 1.5, "end_s": 3.5})
    added = record.append(folder, {"action": "add", "class": "FO", "start_s": 16, "end_s": 18.5})
    record.append(folder, {"action": "reject", "event": f"+{added['seq']}"})  # a person changes their mind
    record.append(folder, {"action": "accept", "event": f"+{added['seq']}"})
    record.append(folder, {"action": "reviewed", "value": True})
    saved = json.load(open(os.path.join(folder, "review.json")))
    assert saved["format"] == record.FORMAT and [d["seq"] for d in saved["decisions"]] == list(range(1, 9))
    first = saved["decisions"][0]
    assert first["at"] == "2026-12-04T12:00:00.000+00:00" and first["original"]["class"] == "FO"
    assert first["original"]["start_s"] == EVENTS[1][1] and "original" not in saved["decisions"][4]
    final = {e["key"]: e for e in record.resolved(record.load(folder), json.load(open(os.path.join(folder, "events.json"))))}
    assert [(k, e["class"], e["start_s"], e["end_s"], e["verdict"]) for k, e in final.items()] == [
        ("1", "RB", 1.5, 3.5, "pending"), ("2", "FO", 5.0, 7.0, "accepted"), ("3", "RB", 9.0, 11.0, "rejected"),
        ("4", "XX", 13.0, 15.0, "relabelled"), ("+5", "FO", 16.0, 18.5, "accepted")]
    assert record.fully_reviewed(record.load(folder))


@pytest.mark.parametrize("decision,message", [
    ({"action": "approve", "event": "1"}, "action 'approve'"),
    ({"action": "accept", "event": "9"}, "event '9' is not an event"),
    ({"action": "accept"}, "event None"),
    ({"action": "relabel", "event": "1", "class": "ZZ"}, "class 'ZZ' is not one of RB FO"),
    ({"action": "move", "event": "1", "start_s": 4, "end_s": 2}, "0 <= start <= end <= 20"),
    ({"action": "add", "class": "RB", "start_s": 1, "end_s": 25}, "0 <= start <= end <= 20"),
    ({"action": "move", "event": "1", "start_s": "1", "end_s": 2}, "must be numbers"),
    ({"action": "add", "class": "RB", "start_s": float("nan"), "end_s": 2}, "must be numbers"),
    ({"action": "reviewed", "value": "yes"}, "value true or false"),
    (["accept", "1"], "a JSON object"),
])
def test_a_malformed_decision_is_refused_and_nothing_is_written(folder, decision, message):
    with pytest.raises(record.BadDecision, match=message):
        record.append(folder, decision)
    assert not os.path.exists(os.path.join(folder, "review.json"))


def test_a_damaged_file_is_named(folder):
    record.append(folder, {"action": "accept", "event": "1"})
    path = os.path.join(folder, "review.json")
    saved = json.load(open(path))
    saved["decisions"].append({"seq": 2, "at": "x", "action": "reject", "event": "7"})
    json.dump(saved, open(path, "w"))
    with pytest.raises(InputError, match="review.json: decision 2: event '7'"):
        record.load(folder)


def test_queue_orders_by_tier_then_closeness(folder):
    events = json.load(open(os.path.join(folder, "events.json")))
    ordered = queue.order(record.resolved(record.load(folder), events), events)
    assert [e["key"] for e in ordered] == QUEUE
    record.append(folder, {"action": "add", "class": "RB", "start_s": 0, "end_s": 1})
    ordered = queue.order(record.resolved(record.load(folder), events), events)
    assert [e["key"] for e in ordered] == QUEUE + ["+1"]  # what a person added comes last
