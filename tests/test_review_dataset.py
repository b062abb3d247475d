"""`sfr-jax prepare reviewed`: a synthetic inspection video with planted defects, events.json/frames.csv and
review.json written by hand; the TFRecords' labels per frame against the decisions worked out by hand, their
pixels against the one image loader on the same decoded frames, the split by video, the unreviewed video
left out, and the Sewer-ML-style CSV beside them."""
import csv
import io
import json
import os

import numpy as np
import yaml
from PIL import Image

from sfr_jax.data import images, synthetic_video, tfrecords
from sfr_jax.data.synthetic_video import Planted, VideoSpec
from sfr_jax.inspection import sources, video
from sfr_jax.review import record
from sfr_jax.tfcpu import tf_cpu
from sfr_jax.verbs import run

CODES = ("RB", "FO", "IN", "OB")
TIMES = [i * 0.5 for i in range(12)]  # 0.0 .. 5.5; 5.5 flagged by the quality gate


def write_inspected(root, name, video_path):
    folder = os.path.join(root, name)
    os.makedirs(folder)
    events = [("RB", 1.0, 2.5), ("FO", 3.5, 5.0), ("IN", 0.0, 0.5)]
    with open(os.path.join(folder, "events.json"), "w") as f:
        json.dump({"video": name, "source": video_path, "duration_s": 6.0, "classes": list(CODES),
                   "thresholds": {c: 0.5 for c in CODES}, "events": [
                       {"class": c, "start_s": s, "end_s": e, "peak_probability": 0.7, "tier": "review"}
                       for c, s, e in events]}, f)
    with open(os.path.join(folder, "frames.csv"), "w") as f:
        f.write("sample,time_s,flagged\n" + "".join(f"{i},{t:.6f},{int(t == 5.5)}\n" for i, t in enumerate(TIMES)))
    return folder


def test_prepare_reviewed_labels_frames_by_the_decisions(tmp_path):
    spec = VideoSpec(seed=0, duration_s=6.0, fps=4.0, size=(160, 128), draw_height=64,
                     planted=(Planted("RB", 1.0, 2.5), Planted("FO", 3.5, 4.5)))
    path = synthetic_video.write_video(str(tmp_path / "pipe.mp4"), spec)
    reports = tmp_path / "reports"
    a, b = (write_inspected(str(reports), n, path) for n in ("a", "b"))
    write_inspected(str(reports), "c", path)  # never reviewed: never used
    # a: fully reviewed. IN (0-0.5) rejected, RB accepted, FO moved to the planted 3.5-4.5 and accepted.
    for decision in ({"action": "reject", "event": "3"}, {"action": "accept", "event": "1"},
                     {"action": "move", "event": "2", "start_s": 3.5, "end_s": 4.5},
                     {"action": "accept", "event": "2"}, {"action": "reviewed", "value": True}):
        record.append(a, decision)
    # b: only IN rejected; RB and FO pending, the rest unknown
    record.append(b, {"action": "reject", "event": "3"})
    out = tmp_path / "data"
    assert run("prepare", ["reviewed", "--reports", str(reports), "--out", str(out), "--val-fraction", "0.5",
                           "--class-set", _class_file(tmp_path), "--image-size", "32", "--shard-size", "4"]) == 0

    rb, fo = [1, 0, 0, 0], [0, 1, 0, 0]
    none = [0, 0, 0, 0]
    want_a = {0.0: none, 0.5: none, 1.0: rb, 1.5: rb, 2.0: rb, 2.5: rb, 3.0: none, 3.5: fo, 4.0: fo, 4.5: fo,
              5.0: none}  # 5.5 flagged: left out
    want_b = {0.0: none, 0.5: none}  # inside the rejected IN event; nothing else is decided
    got = {split: _records(out / split) for split in ("train", "val")}
    assert {t for v, t in got["train"]} == set(want_a) and all(v == "a" for v, _ in got["train"])
    assert {t for v, t in got["val"]} == set(want_b) and all(v == "b" for v, _ in got["val"])  # split by video
    frames = {round(s.time_s, 3): s.frame for s in video.Reader(sources.expand([path])[0][0])}
    for split, want in (("train", want_a), ("val", want_b)):
        for (name, t), (labels, pixels) in got[split].items():
            assert labels == want[t], (name, t)
            # the one image loader's resize of the decoded frame, exactly (PNG all the way)
            np.testing.assert_array_equal(pixels, images.from_array(frames[t], 32))
    info = tfrecords.read_info(str(out / "train"))
    assert info["codes"] == list(CODES) and info["num_examples"] == 11 and info["num_normal"] == 4
    rows = list(csv.DictReader(open(out / "raw" / "SewerML_Val.csv")))
    assert [r["Unknown"] for r in rows] == ["RB FO OB"] * 2 and rows[0]["IN"] == "0" and rows[0]["Video"] == "b"
    rows = list(csv.DictReader(open(out / "raw" / "SewerML_Train.csv")))
    assert {r["Unknown"] for r in rows} == {""} and sum(r["Defect"] == "1" for r in rows) == 7
    # FO and IN were unseen: FO has reviewed positives in the training split and trains as seen from now
    # on; IN was only rejected and stays unseen.
    seen = {c["code"]: c["seen"] for c in yaml.safe_load(open(out / "classes.yaml"))["classes"]}
    assert seen == {"RB": True, "FO": True, "IN": False, "OB": True}

    # Mixed with another prepared data set (here the first output): 0.5 of its frames per reviewed one.
    mixed_out = tmp_path / "mixed"
    assert run("prepare", ["reviewed", "--reports", str(reports), "--out", str(mixed_out), "--val-fraction", "0.5",
                           "--class-set", _class_file(tmp_path), "--image-size", "32", "--mix", str(out),
                           "--mix-ratio", "0.5"]) == 0
    mixed = _records(mixed_out / "train", prefix="mix__")
    assert len(mixed) == 6 and tfrecords.read_info(str(mixed_out / "train"))["num_examples"] == 11 + 6
    for key, (labels, pixels) in mixed.items():  # the drawn frames keep their labels and pixels
        assert labels == got["train"][key][0]
        np.testing.assert_array_equal(pixels, got["train"][key][1])
    # ... and all of its validation frames join the validation split, beside the reviewed validation video's
    held = _records(mixed_out / "val", prefix="mix_val__")
    assert held.keys() == got["val"].keys() and tfrecords.read_info(str(mixed_out / "val"))["num_examples"] == 2 + 2
    for key, (labels, pixels) in held.items():
        assert labels == got["val"][key][0]
        np.testing.assert_array_equal(pixels, got["val"][key][1])


def _class_file(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text("name: mine\nclasses:\n" + "".join(
        f"  - {{code: {c}, phrase: {c.lower()} defect, description: a {c.lower()} defect, "
        f"seen: {'false' if c in ('FO', 'IN') else 'true'}}}\n" for c in CODES))
    return str(path)


def _records(split_dir, prefix=""):
    """{(video, time): (labels, decoded pixels)} of a prepared split (only file names with `prefix`,
    which is taken off)."""
    tf = tf_cpu()
    info = tfrecords.read_info(str(split_dir))
    spec = tfrecords.feature_spec(len(info["codes"]))
    out = {}
    for raw in tf.data.TFRecordDataset(tfrecords.shard_paths(str(split_dir), info)):
        example = tf.io.parse_single_example(raw, spec)
        name = example["filename"].numpy().decode()
        if not name.startswith(prefix):
            continue
        name = name[len(prefix):]
        video_name, time_text = name[:-len(".png")].split("__")
        pixels = np.asarray(Image.open(io.BytesIO(example["image"].numpy())).convert("RGB"))
        out[(video_name, float(time_text))] = (example["labels"].numpy().tolist(), pixels)
    return out


def test_promoted_class_set_keeps_every_field_but_seen():
    """The fine-tuned model's class set is Sewer-ML's with FO seen: its CIW weights (F2-CIW) and standard codes
    (the events' EN 13508-2 / PACP columns) stay."""
    from sfr_jax.review.dataset import promoted
    from sfr_jax.text.classes import class_set_from_dict, load_class_set

    sewer = load_class_set("sewerml")
    labels = np.zeros(len(sewer.codes), np.uint8)
    labels[sewer.codes.index("FO")] = 1
    out, codes = promoted(sewer, [("f.png", labels, "v", 0.0, [])])
    assert codes == ["FO"]
    again = class_set_from_dict(out, out["name"])
    for before, after in zip(sewer.classes, again.classes):
        assert after.seen == (before.seen or before.code == "FO")
        assert (after.code, after.phrase, after.description, after.ciw, after.standard_codes) == \
            (before.code, before.phrase, before.description, before.ciw, before.standard_codes)
    assert np.array_equal(again.ciw, sewer.ciw)
