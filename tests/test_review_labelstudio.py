"""Label Studio round trip against its published formats (the import format of tasks with predictions,
the TimelineLabels result `{"ranges": [{"start", "end"}], "timelinelabels": [label]}` in frames, the JSON
export's tasks with `annotations`): events -> tasks; an annotator's edits, written as Label Studio writes
them -> review.json decisions worked out by hand; importing twice adds nothing."""
import json
import os
import xml.etree.ElementTree as ET

from sfr_jax.review import record
from sfr_jax.verbs import run
from review_fixtures import ANNOTATED, EVENTS, annotate, resolved_events, write_reports

FPS = 5.0


def test_round_trip_through_label_studio_formats(tmp_path):
    reports = write_reports(str(tmp_path / "reports"), video=False)
    out = tmp_path / "ls" / "tasks.json"
    assert run("labelstudio", ["export", reports, "--out", str(out), "--fps", "5",
                               "--video-url", "/data/local-files/?d=videos/"]) == 0
    tasks = json.load(open(out))
    config = ET.parse(tmp_path / "ls" / "label_config.xml").getroot()
    assert config.find("Video").get("frameRate") == "5"
    assert [label.get("value") for label in config.find("TimelineLabels")] == ["RB", "FO"]
    (task,) = tasks
    assert task["data"] == {"video": "/data/local-files/?d=videos/seg1.webm", "sfr_video": "seg1"}
    (prediction,) = task["predictions"]
    regions = prediction["result"]
    assert prediction["score"] == min(e[3] for e in EVENTS)  # the most doubtful event's
    for n, (code, start, end, peak, _) in enumerate(EVENTS):
        assert regions[n]["id"] == f"e{n + 1}" and regions[n]["type"] == "timelinelabels"
        assert regions[n]["value"] == {"ranges": [{"start": int(start * FPS) + 1, "end": int(end * FPS) + 1}],
                                       "timelinelabels": [code]}
        assert regions[n]["score"] == peak
    # The annotator starts from the prediction (Label Studio copies its regions, ids kept) and edits it.
    result = annotate(regions)
    export = [dict(task, id=1, annotations=[
        {"id": 7, "was_cancelled": False, "created_at": "2026-12-04T10:00:00Z", "result": result},
        {"id": 8, "was_cancelled": True, "created_at": "2026-12-04T11:00:00Z", "result": []}])]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    assert run("labelstudio", ["import", str(path), "--reports", reports, "--fps", "5"]) == 0
    folder = os.path.join(reports, "seg1")
    review = record.load(folder)
    assert resolved_events(folder) == ANNOTATED
    assert record.fully_reviewed(review)
    count = len(review["decisions"])
    assert run("labelstudio", ["import", str(path), "--reports", reports, "--fps", "5"]) == 0
    assert len(record.load(folder)["decisions"]) == count  # nothing new to say


def test_a_task_of_no_inspected_video_is_refused(tmp_path, capsys):
    reports = write_reports(str(tmp_path / "reports"), video=False)
    path = tmp_path / "export.json"
    path.write_text(json.dumps([{"id": 3, "data": {"sfr_video": "../elsewhere"}, "annotations": []}]))
    assert run("labelstudio", ["import", str(path), "--reports", reports]) == 2
    assert "data.sfr_video '../elsewhere' is no inspected video" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(reports, "seg1", "review.json"))
