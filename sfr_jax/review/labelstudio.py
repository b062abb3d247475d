"""Label Studio, for teams that label there: inspect events -> video tasks with predictions (timeline
labels with scores), and Label Studio's JSON export -> review.json decisions (issue 21).

    sfr-jax labelstudio export REPORTS_DIR --out tasks.json [--video-url PREFIX] [--fps 25]
    sfr-jax labelstudio import EXPORT.json --reports REPORTS_DIR

export writes tasks.json (one task per video: data.video, data.sfr_video; one prediction whose regions are
the model's events, region id "e<number>", value.ranges in frames at --fps, value.timelinelabels [code],
score the event's peak probability; the task's score is its most doubtful event's, so Label Studio's
sort by prediction score puts the videos that most need a person first) and, beside it, the labelling
config (label_config.xml: <Video> with that frame rate and <TimelineLabels> with every class).

import reads Label Studio's JSON export (a list of tasks with `annotations`); per task its newest
annotation that was not cancelled is compared with the model's events: a region "e<n>" kept with its
label and range accepts event n, with another label relabels it, with another range moves it (frame-exact
within one frame); a model event without a region is rejected; any other region adds a defect; and the
video is marked fully reviewed (the annotator submitted the whole video). Decisions that would not change
the current state are not written again, so importing the same export twice adds nothing.
"""
from __future__ import annotations

import json
import os
import sys
import xml.sax.saxutils

from sfr_jax import cli, fileio
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.review import record

FROM_NAME, TO_NAME, TYPE = "defects", "video", "timelinelabels"
MODEL_VERSION = "sfr-jax"
DEFAULT_FPS = 25.0


def to_frame(t: float, fps: float) -> int:
    """Label Studio's frame number (1-based) of a time in seconds."""
    return int(round(float(t) * fps)) + 1


def to_time(frame, fps: float) -> float:
    return (float(frame) - 1.0) / fps


def label_config(codes, fps: float = DEFAULT_FPS) -> str:
    """The labelling interface: the video at `fps` and one timeline label per class."""
    labels = "\n".join(f'    <Label value={xml.sax.saxutils.quoteattr(str(c))}/>' for c in codes)
    return (f'<View>\n  <Video name="{TO_NAME}" value="$video" frameRate="{fps:g}"/>\n'
            f'  <TimelineLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n  </TimelineLabels>\n</View>\n')


def _region(key: str, code: str, start_s: float, end_s: float, fps: float, score=None) -> dict:
    region = {"id": key, "from_name": FROM_NAME, "to_name": TO_NAME, "type": TYPE,
              "value": {"ranges": [{"start": to_frame(start_s, fps), "end": to_frame(end_s, fps)}],
                        "timelinelabels": [code]}}
    if score is not None:
        region["score"] = float(score)
    return region


def task_of(name: str, events: dict, video_url: str, fps: float) -> dict:
    """One Label Studio task for a video's events (see the module docstring)."""
    regions = [_region(f"e{n + 1}", e["class"], e["start_s"], e["end_s"], fps, e.get("peak_probability"))
               for n, e in enumerate(events["events"])]
    scores = [r["score"] for r in regions if "score" in r]
    return {"data": {"video": video_url, "sfr_video": name},
            "predictions": [{"model_version": MODEL_VERSION, "score": min(scores) if scores else 1.0,
                             "result": regions}]}


def export_tasks(reports: str, video_url: str = "", fps: float = DEFAULT_FPS) -> tuple:
    """(tasks, codes) of every inspected video under `reports`. A task's video is `video_url` + the file
    name of the video events.json names (empty prefix: that path as given)."""
    tasks, codes = [], []
    for name in sorted(os.listdir(reports)):
        folder = os.path.join(reports, name)
        if not os.path.isfile(os.path.join(folder, record.EVENTS)):
            continue
        events = record.read_events(folder)
        source = str(events.get("source", ""))
        url = video_url + os.path.basename(source) if video_url else source
        tasks.append(task_of(name, events, url, fps))
        codes += [c for c in events.get("classes", []) if c not in codes]
    return tasks, codes


def _latest_annotation(task: dict):
    kept = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not kept:
        return None
    return max(kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))


def _spans(result: list, fps: float) -> dict:
    """{region id: (code, start_s, end_s)} of an annotation's timeline regions (one range each: more
    ranges become ids id#2...)."""
    out = {}
    for item in result:
        if item.get("type") != TYPE:
            continue
        value = item.get("value") or {}
        labels = value.get("timelinelabels") or []
        if len(labels) != 1:
            raise InputError(f"Label Studio region {item.get('id')!r}: expected one label, got {labels}")
        for k, span in enumerate(value.get("ranges") or []):
            key = str(item.get("id")) + ("" if k == 0 else f"#{k + 1}")
            out[key] = (labels[0], to_time(span["start"], fps), to_time(span["end"], fps))
    return out


def decisions_for(task: dict, events: dict, review: dict, fps: float) -> list:
    """The decisions that bring the video's review to what the task's newest annotation says."""
    annotation = _latest_annotation(task)
    if annotation is None:
        return []
    spans = _spans(annotation.get("result") or [], fps)
    state = {e["key"]: e for e in record.resolved(review, events)}
    tolerance = 1.0 / fps + 1e-6
    out = []
    for n, event in enumerate(events["events"]):
        key, now = str(n + 1), state[str(n + 1)]
        span = spans.pop(f"e{n + 1}", None)
        if span is None:
            if now["verdict"] != "rejected":
                out.append({"action": "reject", "event": key})
            continue
        code, start, end = span
        if abs(start - now["start_s"]) > tolerance or abs(end - now["end_s"]) > tolerance:
            out.append({"action": "move", "event": key, "start_s": round(start, 3), "end_s": round(end, 3)})
        if code != event["class"]:
            if not (now["verdict"] == "relabelled" and now["class"] == code):
                out.append({"action": "relabel", "event": key, "class": code})
        elif now["verdict"] != "accepted":
            out.append({"action": "accept", "event": key})
    added = [(e["class"], e["start_s"], e["end_s"]) for e in state.values() if e["verdict"] == "added"]
    for code, start, end in spans.values():
        if not any(c == code and abs(s - start) <= tolerance and abs(t - end) <= tolerance for c, s, t in added):
            out.append({"action": "add", "class": code, "start_s": round(start, 3), "end_s": round(end, 3)})
    if not record.fully_reviewed(review):
        out.append({"action": "reviewed", "value": True})
    return out


def import_export(export, reports: str, fps: float = DEFAULT_FPS) -> dict:
    """Apply a Label Studio JSON export (a list of tasks) to the reports' review.json files; returns
    {video: decisions written}. A task naming no inspected video is an InputError."""
    if not isinstance(export, list):
        raise InputError("a Label Studio JSON export is a list of tasks")
    written = {}
    for task in export:
        name = (task.get("data") or {}).get("sfr_video")
        folder = os.path.join(reports, str(name))
        if not name or os.path.dirname(os.path.normpath(folder)) != os.path.normpath(reports) or \
                not os.path.isfile(os.path.join(folder, record.EVENTS)):
            raise InputError(f"Label Studio task {task.get('id')!r}: data.sfr_video {name!r} is no inspected "
                             f"video of {reports}")
        events = record.read_events(folder)
        classes = tuple(code for code, _, _ in _spans((_latest_annotation(task) or {}).get("result") or [], fps).values())
        decisions = decisions_for(task, events, record.load(folder), fps)
        for decision in decisions:
            record.append(folder, decision, classes)
        written[name] = len(decisions)
    return written


def build_parser():
    ap = cli.parser("sfr-jax labelstudio", "inspect events <-> Label Studio video tasks and its JSON export")
    sub = ap.add_subparsers(dest="command", required=True)
    out = sub.add_parser("export", help="inspect events -> Label Studio tasks (with predictions) + label config")
    out.add_argument("reports", help="the --out folder of `sfr-jax inspect`")
    out.add_argument("--out", required=True, help="tasks JSON file to write (label_config.xml beside it)")
    out.add_argument("--video-url", default="", help="prefix of the videos' URL as Label Studio reaches them "
                                                      "(e.g. /data/local-files/?d=videos/); default: their paths")
    out.add_argument("--fps", type=float, default=DEFAULT_FPS, help="the videos' frame rate (default 25)")
    get = sub.add_parser("import", help="Label Studio JSON export -> review.json decisions")
    get.add_argument("export", help="Label Studio's JSON export (Export > JSON)")
    get.add_argument("--reports", required=True, help="the --out folder of `sfr-jax inspect`")
    get.add_argument("--fps", type=float, default=DEFAULT_FPS, help="the frame rate the tasks were exported with")
    return ap


@cli.verb("sfr-jax labelstudio")
def main(argv) -> int:
    args = build_parser().parse_args(argv)
    if not args.fps > 0:
        raise InputError(f"--fps {args.fps}: must be positive")
    reports = args.reports
    if not os.path.isdir(reports):
        raise MissingInput(f"reports folder {reports!r}: no such folder (the --out of `sfr-jax inspect`)")
    if args.command == "export":
        tasks, codes = export_tasks(reports, args.video_url, args.fps)
        if not tasks:
            raise InputError(f"{reports}: no inspected video (no events.json) to export")
        path = fileio.write_json(args.out, tasks)
        config = fileio.write_text(os.path.join(os.path.dirname(path), "label_config.xml"),
                                   label_config(codes, args.fps))
        print(f"{len(tasks)} task(s) -> {path}; labelling config -> {config}")
        return 0
    try:
        with open(args.export, encoding="utf-8") as handle:
            export = json.load(handle)
    except OSError as error:
        raise MissingInput(f"{args.export}: cannot read ({error.strerror})") from None
    except ValueError as error:
        raise InputError(f"{args.export}: not JSON ({error})") from None
    for name, count in import_export(export, reports, args.fps).items():
        print(f"{name}: {count} decision(s) written to review.json", file=sys.stdout)
    return 0
