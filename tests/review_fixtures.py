"""A reports folder as `sfr-jax inspect` leaves it, written by hand (no model): per video an events.json
with four events of known tiers and a 20 s VP8 video beside it, so the review tests know the queue."""
import copy
import json
import os

import av
import numpy as np

DURATION = 20.0
THRESHOLDS = {"RB": 0.3, "FO": 0.4}
CONFIDENT = {"RB": 0.8, "FO": None}
# number -> (class, start, end, peak, tier); the queue: review by closeness (2: 0.05, 3: 0.2), then
# confident by closeness to 0.8 (4: 0.05, 1: 0.1)
EVENTS = [("RB", 1.0, 3.0, 0.9, "confident"), ("FO", 5.0, 7.0, 0.45, "review"),
          ("RB", 9.0, 11.0, 0.5, "review"), ("RB", 13.0, 15.0, 0.85, "confident")]
QUEUE = ["2", "3", "4", "1"]


def write_video(path, seconds=DURATION, fps=5):
    with av.open(path, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.full((48, 64, 3), (i * 3) % 255, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_reports(root, names=("seg1",), video=True):
    os.makedirs(root, exist_ok=True)
    for name in names:
        folder = os.path.join(root, name)
        os.makedirs(os.path.join(folder, "thumbnails"), exist_ok=True)
        source = os.path.join(root, "..", f"{name}.webm")
        if video:
            write_video(source)
        events = [{"class": c, "kind": "continuous", "start_s": s, "end_s": e, "peak_probability": p,
                   "peak_s": s + 0.5, "peak_sample": 0, "samples": 5, "start_m": None, "end_m": None,
                   "thumbnail": f"thumbnails/{n + 1:03d}.jpg", "tier": t, "duration_s": e - s}
                  for n, (c, s, e, p, t) in enumerate(EVENTS)]
        with open(os.path.join(folder, "events.json"), "w") as f:
            json.dump({"video": name, "source": os.path.abspath(source), "status": "ok", "message": "",
                       "duration_s": DURATION, "classes": ["RB", "FO"], "thresholds": THRESHOLDS,
                       "confident_thresholds": CONFIDENT, "tiers": "tiers: 'confident' and 'review'",
                       "settings": {}, "events": events}, f)
        with open(os.path.join(folder, "report.html"), "w") as f:
            f.write("<!DOCTYPE html><title>static report</title><p>the static report</p>")
    return root


def annotate(regions) -> list:
    """What the Label Studio tests' annotator does to our prediction's regions (ids kept): event 1 moved to
    1.0-4.0 s, event 4 relabelled FO, event 3 deleted (rejected), a missed RB added at 16-18 s."""
    result = copy.deepcopy(regions)
    for region in result:
        region.pop("score", None)
    result[0]["value"]["ranges"] = [{"start": 6, "end": 21}]
    result[3]["value"]["timelinelabels"] = ["FO"]
    del result[2]
    result.append({"id": "Xy12", "from_name": "defects", "to_name": "video", "type": "timelinelabels",
                   "origin": "manual", "value": {"ranges": [{"start": 81, "end": 91}], "timelinelabels": ["RB"]}})
    return result


# the events as review.json resolves them after `annotate`, worked out by hand: (key, class, start, end, verdict)
ANNOTATED = [("1", "RB", 1.0, 4.0, "accepted"), ("2", "FO", 5.0, 7.0, "accepted"), ("3", "RB", 9.0, 11.0, "rejected"),
             ("4", "FO", 13.0, 15.0, "relabelled"), ("+6", "RB", 16.0, 18.0, "added")]


def resolved_events(folder: str) -> list:
    """(key, class, start, end, verdict) of a video's events as its review.json resolves them."""
    from sfr_jax.review import record

    return [(e["key"], e["class"], e["start_s"], e["end_s"], e["verdict"])
            for e in record.resolved(record.load(folder), record.read_events(folder))]
