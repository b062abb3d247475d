"""inspect_videos end to end with stub scorers at the Scorer interface: events of a synthetic video with
planted intervals come out within one sample period of them (and at the sidecar's distances); flagged
frames are scored but kept out of events; cut and zero-byte videos are reported while the others finish;
a finished video is skipped, an interrupted or partial one redone; the verb's exit codes."""
import csv
import dataclasses
import hashlib
import json
import os
import re
import shutil
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from sfr_jax import cli
from sfr_jax.data import images
from sfr_jax.data import synthetic_video as sv
from sfr_jax.eval.decisions import Decisions
from sfr_jax.inspection import cli as inspect_cli
from sfr_jax.inspection import compare, run, sources
from sfr_jax.source import ModelSource

CODES = ("RB", "FO", "IN", "OB")
PLANTED = (sv.Planted("RB", 2.0, 5.0), sv.Planted("FO", 6.3, 9.1), sv.Planted("IN", 10.0, 10.6))
SPEC = sv.VideoSpec(seed=11, duration_s=12.0, fps=10, size=(160, 128), draw_height=64, planted=PLANTED)
EVERY = 0.5
SIZE = 32


class OracleScorer:
    """Logits from the planted truth: the image is matched to the nearest reference image (the rendered
    frames at model size) and scores +4 for the classes planted there, -4 for the others."""

    def __init__(self, references, labels, codes=CODES, batch_size=4):
        self.codes, self.image_size, self.batch_size = tuple(codes), SIZE, batch_size
        self.decisions = Decisions.uncalibrated(self.codes)
        self.references = np.stack(references).astype(np.float32)
        self.labels, self.calls = labels, []

    def logits(self, x):
        x = np.asarray(x)
        assert x.dtype == np.uint8 and x.shape[1:] == (SIZE, SIZE, 3)
        self.calls.append(len(x))
        out = np.full((len(x), len(self.codes)), -4.0, np.float32)
        for row, image in enumerate(x.astype(np.float32)):
            distances = ((self.references - image) ** 2).mean(axis=(1, 2, 3))
            for code in self.labels[int(np.argmin(distances))]:
                out[row, self.codes.index(code)] = 4.0
        return out


class ConstantScorer:
    """The same logits for every image; optionally interrupted (Ctrl-C) at its n-th call."""

    def __init__(self, interrupt_at=None):
        self.codes, self.image_size, self.batch_size = CODES, SIZE, 4
        self.decisions = Decisions.uncalibrated(CODES)
        self.calls, self.interrupt_at = 0, interrupt_at

    def logits(self, x):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return np.full((len(x), len(CODES)), -2.0, np.float32)


def _truth(t):
    return {p.code for p in PLANTED if p.start_s <= t < p.end_s}


@pytest.fixture(scope="module")
def planted_video(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    path = sv.write_video(str(root / "videos" / "seg1.mp4"), SPEC, "h264")
    sidecar = sv.write_distance_csv(str(root / "seg1.csv"), sv.distance_table(SPEC))
    references = [images.from_array(sv.render_frame(SPEC, i), SIZE) for i in range(SPEC.num_frames)]
    labels = [_truth(i / SPEC.fps) for i in range(SPEC.num_frames)]
    return dict(root=root, path=path, sidecar=sidecar, references=references, labels=labels)


def _options(**kwargs):
    return run.InspectOptions(**{"every_s": EVERY, "progress": False, **kwargs})


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_planted_intervals_become_events_within_one_sample_period(planted_video, tmp_path):
    scorer = OracleScorer(planted_video["references"], planted_video["labels"])
    inputs, problems = sources.expand([os.path.dirname(planted_video["path"])])
    assert not problems and [s.name for s in inputs] == ["seg1"]
    summary = run.inspect_videos(scorer, inputs, str(tmp_path), _options(distance=planted_video["sidecar"]))
    assert summary.done == ["seg1"] and not summary.failed
    folder = tmp_path / "seg1"
    result = json.load(open(folder / "events.json"))
    found = result["events"]
    assert len(found) == len(PLANTED)
    for planted in PLANTED:
        (event,) = [e for e in found if e["class"] == planted.code]
        assert abs(event["start_s"] - planted.start_s) <= EVERY and abs(event["end_s"] - planted.end_s) <= EVERY
        assert event["kind"] == ("point" if planted.end_s - planted.start_s < 2.0 else "continuous")
        # distances from the sidecar, i.e. where the camera was at those times
        assert event["start_m"] == pytest.approx(sv.distance_at(SPEC, event["start_s"]), abs=1e-4)
        assert event["end_m"] == pytest.approx(sv.distance_at(SPEC, event["end_s"]), abs=1e-4)
        assert event["start_s"] <= event["peak_s"] <= event["end_s"] and event["peak_probability"] > 0.98
        thumbnail = Image.open(folder / event["thumbnail"])
        assert thumbnail.format == "JPEG" and thumbnail.size == (240, 192)
    # every sample scored, in batches of the scorer's size, the last padded
    frames = _rows(folder / "frames.csv")
    assert len(frames) == 24 and scorer.calls == [4] * 6
    assert [float(r["time_s"]) for r in frames] == [i * EVERY for i in range(24)]
    for row in frames:
        truth = _truth(float(row["time_s"]))
        for code in CODES:
            assert float(row[code]) == pytest.approx(1 / (1 + np.exp(-4.0 if code in truth else 4.0)), abs=1e-6)
        assert float(row["distance_m"]) == pytest.approx(sv.distance_at(SPEC, float(row["time_s"])), abs=1e-3)
        assert row["flagged"] == "0"
    events_csv = _rows(folder / "events.csv")
    assert [r["class"] for r in events_csv] == [e["class"] for e in found]
    summary_rows = _rows(tmp_path / "summary.csv")
    assert summary_rows[0]["status"] == "ok" and summary_rows[0]["frames"] == "24"
    assert [summary_rows[0][f"events_{c}"] for c in CODES] == ["1", "1", "1", "0"]
    page = open(folder / "report.html").read()
    assert page.count('<svg class="timeline"') == len(CODES)
    src = re.search(r'<video id="video" controls preload="metadata" src="([^"]+)"', page).group(1)
    assert os.path.normpath(os.path.join(folder, urllib.parse.unquote(src))) == planted_video["path"]
    assert os.listdir(folder) and not [n for n in os.listdir(folder) if n.startswith(".")]  # no scratch left


def test_odd_batch_sizes_give_the_same_results(planted_video, tmp_path):
    scorer = OracleScorer(planted_video["references"], planted_video["labels"], batch_size=5)
    inputs, _ = sources.expand([planted_video["path"]])
    run.inspect_videos(scorer, inputs, str(tmp_path / "a"), _options())
    assert scorer.calls == [5] * 5  # 24 samples: 4 full batches and one padded
    other = OracleScorer(planted_video["references"], planted_video["labels"])
    run.inspect_videos(other, inputs, str(tmp_path / "b"), _options(batch=7))
    assert other.calls == [7] * 4
    for name in ("frames.csv", "events.csv"):
        assert open(tmp_path / "a" / "seg1" / name).read() == open(tmp_path / "b" / "seg1" / name).read()


def test_flagged_frames_are_scored_but_kept_out_of_events(tmp_path):
    """A frame folder whose frames at 4.0 and 4.5 s are black: the oracle calls them RB, yet no event."""
    folder = tmp_path / "frames" / "seg2"
    folder.mkdir(parents=True)
    references, labels = [], []
    for k in range(12):
        t = k * 0.5
        frame = sv.render_frame(SPEC, int(t * SPEC.fps))
        if t in (4.0, 4.5):
            frame = np.zeros_like(frame)
        Image.fromarray(frame).save(folder / f"t={t:.1f}s.png")
        references.append(images.from_array(frame, SIZE))
        labels.append({"RB"} if 1.0 <= t <= 2.5 or t in (4.0, 4.5) else set())
    scorer = OracleScorer(references, labels)
    inputs, problems = sources.expand([str(tmp_path / "frames")])
    assert not problems and inputs[0].is_frame_folder
    run.inspect_videos(scorer, inputs, str(tmp_path / "out"), _options(every_s=None))
    found = json.load(open(tmp_path / "out" / "seg2" / "events.json"))["events"]
    assert [(e["class"], e["start_s"], e["end_s"]) for e in found] == [("RB", 1.0, 2.5)]
    frames = _rows(tmp_path / "out" / "seg2" / "frames.csv")
    flagged = [float(r["time_s"]) for r in frames if r["flagged"] == "1"]
    assert flagged == [4.0, 4.5]
    assert all(r["dark"] == "1" and r["uniform"] == "1" for r in frames if r["flagged"] == "1")
    assert float(frames[8]["RB"]) > 0.98  # scored all the same
    record = json.load(open(tmp_path / "out" / "seg2" / "record.json"))
    assert record["flagged"] == 2 and record["flag_counts"]["dark"] == 2
    assert _rows(tmp_path / "out" / "summary.csv")[0]["flagged"] == "2"
    page = open(tmp_path / "out" / "seg2" / "report.html").read()
    assert "2 flagged: dark 2, uniform 2" in page and '<video id="video"' not in page


@pytest.fixture(scope="module")
def mixed_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    spec = sv.VideoSpec(seed=2, duration_s=2.0, fps=10, size=(64, 48), draw_height=48)
    videos = root / "videos"
    a = sv.write_video(str(videos / "a.mp4"), spec, "h264")
    full = sv.write_video(str(root / "full.mp4"), dataclasses.replace(spec, duration_s=6.0), "h264")
    data = open(full, "rb").read()
    (videos / "b.mp4").write_bytes(data[:len(data) // 2])
    (videos / "c.mp4").write_bytes(b"")
    d = sv.write_video(str(videos / "d.mkv"), spec, "h264")
    return dict(root=root, videos=str(videos), a=a, d=d)


def test_cut_and_zero_byte_videos_are_reported_and_the_others_finish(mixed_videos, tmp_path):
    inputs, _ = sources.expand([mixed_videos["videos"]])
    assert [s.name for s in inputs] == ["a", "b", "c", "d"]
    summary = run.inspect_videos(ConstantScorer(), inputs, str(tmp_path), _options())
    assert summary.done == ["a", "b", "c", "d"]
    assert [(s.name, status) for s, status, _ in summary.failed] == [("b", "truncated"), ("c", "empty")]
    rows = {r["video"]: r for r in _rows(tmp_path / "summary.csv")}
    assert [rows[n]["status"] for n in "abcd"] == ["ok", "truncated", "empty", "ok"]
    assert rows["a"]["frames"] == rows["d"]["frames"] == "4"
    assert "stopped at" in rows["b"]["message"] and 1 <= int(rows["b"]["frames"]) < 12
    assert len(_rows(tmp_path / "b" / "frames.csv")) == int(rows["b"]["frames"])  # what decoded is kept
    assert rows["c"]["frames"] == "0" and os.path.isfile(tmp_path / "c" / "report.html")


def test_cli_exit_code_and_messages(mixed_videos, tmp_path, monkeypatch, capsys):
    opened = []

    def open_scorer(source, batch_size=16):  # sfr_jax.serve.backends.open_scorer's signature
        opened.append((source.mode, source.classes, batch_size))
        return ConstantScorer(), None

    monkeypatch.setattr(inspect_cli, "open_scorer", open_scorer)
    argv = ["--checkpoint", "x.pth", mixed_videos["videos"], "--out", str(tmp_path), "--every", "0.5",
            "--no-progress"]
    assert cli.run("sfr-jax inspect", inspect_cli.main, argv) == 2
    err = capsys.readouterr().err
    assert "b.mp4: truncated: stopped at" in err and "c.mp4: empty: zero-byte file" in err
    assert "inspected 4, already done 0, failed 2 of 4" in err and opened == [(None, None, 16)]
    # only the good videos: exit 0; a second run skips them
    good = ["--checkpoint", "x.pth", mixed_videos["a"], mixed_videos["d"], "--out", str(tmp_path / "good"),
            "--no-progress"]
    mine = tmp_path / "my.yaml"  # read (cheaply) before the model loads, so it must exist
    mine.write_text("classes:\n  - {code: RB, phrase: Cracks, description: a cracked pipe, seen: true}\n")
    assert cli.run("sfr-jax inspect", inspect_cli.main, good + ["--batch", "3", "--classes", str(mine)]) == 0
    assert opened[-1] == (None, str(mine), 3)
    assert cli.run("sfr-jax inspect", inspect_cli.main, good) == 0
    assert "inspected 2, already done 0" in capsys.readouterr().err  # other classes: other results
    assert cli.run("sfr-jax inspect", inspect_cli.main, good) == 0
    assert "inspected 0, already done 2, failed 0 of 2" in capsys.readouterr().err
    for bad, message in ((["--shard", "2/2"], "--shard '2/2'"), (["--length", "x"], "--length 'x'"),
                         (["--smooth", "2"], "smooth must be an odd number")):
        assert cli.run("sfr-jax inspect", inspect_cli.main, good + bad) == 2
        assert message in capsys.readouterr().err
    missing = ["--checkpoint", "x.pth", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    assert cli.run("sfr-jax inspect", inspect_cli.main, missing) == 2
    assert "no video found" in capsys.readouterr().err
    many = good + ["--distance", mixed_videos["a"]]
    assert cli.run("sfr-jax inspect", inspect_cli.main, many) == 2
    assert "one sidecar file fits one video" in capsys.readouterr().err


def _digest(path):
    return hashlib.sha1(open(path, "rb").read()).hexdigest()


def test_resume_skips_finished_and_redoes_interrupted_or_partial_videos(mixed_videos, tmp_path):
    inputs, _ = sources.expand([mixed_videos["a"], mixed_videos["d"]])
    out = str(tmp_path)
    with pytest.raises(KeyboardInterrupt):  # a (4 samples) is one call; Ctrl-C in d's first call
        run.inspect_videos(ConstantScorer(interrupt_at=2), inputs, out, _options())
    assert os.path.isfile(os.path.join(out, "a", "record.json")) and not os.path.exists(os.path.join(out, "d"))
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no temporary left behind
    assert [r["status"] for r in _rows(os.path.join(out, "summary.csv"))] == ["ok", "pending"]
    record_a = _digest(os.path.join(out, "a", "record.json"))

    summary = run.inspect_videos(ConstantScorer(), inputs, out, _options())
    assert (summary.skipped, summary.done) == (["a"], ["d"])
    assert _digest(os.path.join(out, "a", "record.json")) == record_a  # untouched
    assert [r["status"] for r in _rows(os.path.join(out, "summary.csv"))] == ["ok", "ok"]

    os.remove(os.path.join(out, "d", "record.json"))  # a folder without its record is partial
    summary = run.inspect_videos(ConstantScorer(), inputs, out, _options())
    assert (summary.skipped, summary.done) == (["a"], ["d"])

    shutil.copy(mixed_videos["a"], tmp_path / "a-copy.mp4")
    os.utime(mixed_videos["a"], ns=(1_000_000_000, 1_000_000_000))  # the input changed: redone
    summary = run.inspect_videos(ConstantScorer(), inputs, out, _options())
    assert (summary.skipped, summary.done) == (["d"], ["a"])

    summary = run.inspect_videos(ConstantScorer(), inputs, out, _options(every_s=1.0))  # settings changed
    assert summary.done == ["a", "d"]


def test_shards_write_one_summary_of_the_whole_list(mixed_videos, tmp_path):
    inputs, _ = sources.expand([mixed_videos["a"], mixed_videos["d"]])
    first = run.inspect_videos(ConstantScorer(), inputs, str(tmp_path), _options(shard=(0, 2)))
    assert first.done == ["a"] and [r["status"] for r in first.rows] == ["ok", "pending"]
    second = run.inspect_videos(ConstantScorer(), inputs, str(tmp_path), _options(shard=(1, 2)))
    assert second.done == ["d"] and [r["status"] for r in _rows(tmp_path / "summary.csv")] == ["ok", "ok"]


def test_check_planted_finds_what_an_oracle_sees(tmp_path):
    spec = dataclasses.replace(SPEC, duration_s=6.0, planted=(sv.Planted("FO", 1.0, 3.2), sv.Planted("RB", 4.0, 4.6)))
    references = [images.from_array(sv.render_frame(spec, i), SIZE) for i in range(spec.num_frames)]
    labels = [{p.code for p in spec.planted if p.start_s <= i / spec.fps < p.end_s} for i in range(spec.num_frames)]
    matches, false_alarms, page = compare.check_planted(OracleScorer(references, labels), str(tmp_path), spec)
    assert [(m.code, m.found_start_s, m.found_end_s) for m in matches] == [("FO", 1.0, 3.0), ("RB", 4.0, 4.5)]
    assert false_alarms == [] and os.path.isfile(page)
    assert "synthetic.mp4" in open(page).read()


def test_model_line_is_words_with_the_step_opened():
    """The report's model line names the source in words, with the step a workdir's newest/best resolved to."""
    def args(**kw):
        return ModelSource(**{"workdir": "runs/r1", **kw})

    assert args(checkpoint="run1.pth", workdir=None).describe() == "checkpoint run1.pth"
    assert args().describe(294) == "workdir runs/r1, newest step 294"
    assert args(best=True).describe(120) == "workdir runs/r1, best step 120"
    assert args(step=7, classes="my.yaml").describe(7) == "workdir runs/r1, step 7, classes my.yaml"
    assert args().describe() == "workdir runs/r1, newest step"  # before the model is opened
