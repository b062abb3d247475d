"""inspect --distance ocr|auto: the counter burnt into synthetic videos is read back at the planted distances
(varied fonts, sizes, corners, units, decimals, boxes); hidden spans are interpolated and said so; a glitch on
screen is rejected; a video without a counter falls back to --length and says why; auto prefers a sidecar.
The cleaning rules (odometer.py) against hand-computed cases; the demo's counter drawn as before."""
import csv
import dataclasses
import json
import math
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from sfr_jax import cli
from sfr_jax.data import synthetic_video as sv
from sfr_jax.inspection import cli as inspect_cli
from sfr_jax.inspection import ocr, odometer, run, sources
from test_inspect_run import ConstantScorer

EVERY = 0.5
# Each sample's reading must be within the counter's rounding plus this of the planted distance.
TOLERANCE_M = 0.05
STYLES = [
    sv.CounterStyle(),  # the demo's: PIL's default font, bottom left, dark box, 2 decimals, "m"
    sv.CounterStyle(font="dejavu-mono", size=0.06, corner="top-right", units="", decimals=3, box="light"),
    sv.CounterStyle(font="dejavu-sans-bold", size=0.07, corner="bottom-right", decimals=1, box="light"),
]


def _inspect(tmp_path, spec, name="v", **options):
    path = sv.write_video(str(tmp_path / "videos" / f"{name}.mp4"), spec, "h264")
    inputs, problems = sources.expand([path])
    assert not problems
    options = {"every_s": EVERY, "progress": False, "distance": "ocr", **options}
    summary = run.inspect_videos(ConstantScorer(), inputs, str(tmp_path / "out"), run.InspectOptions(**options))
    assert not summary.failed
    folder = tmp_path / "out" / name
    with open(folder / "frames.csv", newline="") as handle:
        frames = list(csv.DictReader(handle))
    return frames, json.load(open(folder / "events.json")), folder


def _spec(style, **kwargs):
    base = dict(seed=3, duration_s=10.0, fps=4, size=(352, 288), draw_height=64, start_m=97.6, speed_m_s=0.3,
                counter_style=style)
    return sv.VideoSpec(**{**base, **kwargs})


@pytest.mark.parametrize("style", STYLES, ids=lambda s: f"{s.font}-{s.corner}-{s.decimals}")
def test_counter_is_read_at_the_planted_distances(tmp_path, style):
    # 97.6 m + 3 m: the number gains a digit (99.99 -> 100.00) on the way
    frames, _, _ = _inspect(tmp_path, _spec(style))
    assert len(frames) == 20
    for row in frames:
        truth = sv.distance_at(_spec(style), float(row["time_s"]))
        assert row["distance_source"] == "ocr", row
        assert abs(float(row["distance_m"]) - truth) <= 0.5 * 10 ** -style.decimals + TOLERANCE_M, row


def test_hidden_spans_are_interpolated_and_a_glitch_is_rejected(tmp_path):
    style = sv.CounterStyle(font="default", size=0.06, corner="top-left", decimals=2, hidden=((3.0, 5.0),),
                            shown=((7.0, 7.25, 23.45),))  # one sample shows 23.45 m, 80 m from the truth
    spec = _spec(style)
    frames, events, folder = _inspect(tmp_path, spec)
    by_time = {float(r["time_s"]): r for r in frames}
    for t, row in by_time.items():
        truth = sv.distance_at(spec, t)
        if 3.0 <= t < 5.0 or t == 7.0:
            assert row["distance_source"] == "interpolated", row
            assert abs(float(row["distance_m"]) - truth) <= 0.05, row  # the camera's speed barely changes here
        else:
            assert row["distance_source"] == "ocr" and abs(float(row["distance_m"]) - truth) <= 0.01, row
    assert by_time[7.0]["counter_m"] == "23.450"  # what was on screen is kept, not used
    assert all(by_time[t]["counter_m"] == "" for t in (3.0, 3.5, 4.0, 4.5))
    said = events["settings"]["distance"]
    assert said.startswith("ocr (RapidOCR") and "15 of 20 samples read, 5 interpolated, 0 without" in said
    assert "16 numbers seen, rejected: 1 jump" in said


def test_no_counter_falls_back_to_length_and_says_why(tmp_path):
    spec = dataclasses.replace(_spec(sv.CounterStyle()), counter=False)
    frames, events, _ = _inspect(tmp_path, spec, length=(5.0, 15.0))
    duration = 10.0
    for row in frames:
        assert row["distance_source"] == "length" and row["counter_m"] == ""
        assert float(row["distance_m"]) == pytest.approx(5.0 + 10.0 * float(row["time_s"]) / duration, abs=1e-3)
    said = events["settings"]["distance"]
    assert said.startswith("ocr: no counter found") and "--length 5:15" in said
    # without --length: no distance, and the settings say why
    frames, events, _ = _inspect(tmp_path / "bare", spec)
    assert all(r["distance_m"] == "" and r["distance_source"] == "" for r in frames)
    said = events["settings"]["distance"]  # "none (why)", as every video without distances says it
    assert said.startswith("none (ocr: no counter found") and said.endswith("no --length to fall back on)")


def test_auto_prefers_a_sidecar_beside_the_video(tmp_path):
    spec = _spec(sv.CounterStyle(), duration_s=4.0)
    sv.write_distance_csv(str(tmp_path / "videos" / "v.csv"), [(0.0, 50.0), (4.0, 54.0)])
    frames, events, folder = _inspect(tmp_path, spec, distance="auto")
    assert [r["distance_source"] for r in frames] == ["sidecar"] * 8
    assert float(frames[2]["distance_m"]) == pytest.approx(51.0) and "counter_m" not in frames[0]
    os.remove(tmp_path / "videos" / "v.csv")
    frames, _, _ = _inspect(tmp_path / "again", spec, distance="auto")
    assert {r["distance_source"] for r in frames} == {"ocr"}


def test_events_carry_each_distance_source(tmp_path):
    class Firing(ConstantScorer):
        def logits(self, x):
            return np.full((len(x), len(self.codes)), 3.0, np.float32)

    spec = _spec(sv.CounterStyle(hidden=((0.0, 1.0),)), duration_s=4.0)
    path = sv.write_video(str(tmp_path / "videos" / "v.mp4"), spec, "h264")
    inputs, _ = sources.expand([path])
    run.inspect_videos(Firing(), inputs, str(tmp_path / "out"),
                       run.InspectOptions(every_s=EVERY, progress=False, distance="ocr"))
    event = json.load(open(tmp_path / "out" / "v" / "events.json"))["events"][0]
    # hidden at the start: no distance before the first reading (no guess), then read
    assert event["start_m"] is None and event["start_m_source"] == ""
    assert event["end_m_source"] == "ocr" and abs(event["end_m"] - sv.distance_at(spec, event["end_s"])) <= 0.01
    with open(tmp_path / "out" / "v" / "events.csv", newline="") as handle:
        assert next(csv.DictReader(handle))["end_m_source"] == "ocr"
    assert '<small class="source">ocr</small>' in open(tmp_path / "out" / "v" / "report.html").read()


@pytest.mark.parametrize("argv, message", [
    (["--distance", "a.csv", "--length", "0:5"], "--length is the fallback only of --distance ocr or auto"),
    (["--distance", "ocr", "--counter-range", "9:1"], "need MIN < MAX"),
    (["--distance", "ocr", "--counter-range", "x"], "--counter-range 'x': expected START:END"),
    (["--distance", "ocr", "--counter-max-speed", "0"], "--counter-max-speed: '0' is not a finite number > 0"),
])
def test_bad_distance_options_are_user_errors(tmp_path, capsys, argv, message):
    code = cli.run("sfr-jax inspect", inspect_cli.main, ["--checkpoint", "x.pth", str(tmp_path), "--out",
                                                         str(tmp_path / "o"), *argv])
    assert code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]


# --- the cleaning rules, against hand-computed cases ------------------------------------------------------

def test_clean_rejects_out_of_range_jumps_and_backward_readings():
    times = np.arange(10.0)
    readings = [1.0, 1.1, np.nan, 1.3, 9.9, 1.5, 600.0, 1.7, 1.2, 1.9]  # 9.9: a jump; 1.2: backward
    cleaned = odometer.clean(times, readings, odometer.OdometerConfig(max_speed_m_s=0.5, smooth=1))
    assert cleaned.rejected == {"range": 1, "jump": 1, "backward": 1} and cleaned.read == 9
    assert cleaned.kinds == ["ocr", "ocr", "interpolated", "ocr", "interpolated", "ocr", "interpolated", "ocr",
                             "interpolated", "ocr"]
    np.testing.assert_allclose(cleaned.distances, [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9])


def test_clean_holds_small_backtracks_and_gives_none_outside_the_readings():
    times = np.arange(7.0)
    readings = [np.nan, 2.0, 2.2, 2.1, 2.4, 2.5, np.nan]  # 2.1: within the 0.3 m tolerance, held at 2.2
    cleaned = odometer.clean(times, readings, odometer.OdometerConfig(smooth=1))
    assert cleaned.kinds == ["", "ocr", "ocr", "ocr", "ocr", "ocr", ""]
    np.testing.assert_allclose(cleaned.distances[1:6], [2.0, 2.2, 2.2, 2.4, 2.5])
    assert math.isnan(cleaned.distances[0]) and math.isnan(cleaned.distances[6])
    # the median of 3 removes a one-sample glitch the jump test lets through (a camera allowed 50 m/s); its
    # neighbour takes the next reading's value (the median of 3.0, 1.3, 1.4)
    glitch = odometer.clean(np.arange(5.0), [1.0, 1.1, 3.0, 1.3, 1.4], odometer.OdometerConfig(max_speed_m_s=50))
    np.testing.assert_allclose(glitch.distances, [1.0, 1.1, 1.3, 1.4, 1.4])


def test_parse_number_takes_decimals_and_not_dates_or_clocks():
    assert ocr.parse_number("  112.34 m") == (112.34, True)
    assert ocr.parse_number("Dist 7,5m") == (7.5, True)
    assert ocr.parse_number("0.125") == (0.125, False)
    assert ocr.parse_number("2024.05.12") == (None, False) and ocr.parse_number("12:30:05") == (None, False)


def test_default_counter_is_drawn_as_the_demo_always_drew_it():
    """The default CounterStyle against the drawing code it replaced (copied here as it was)."""
    spec = sv.VideoSpec(seed=4, duration_s=2.0, fps=2, size=(320, 256), draw_height=64, start_m=3.0)
    bare = dataclasses.replace(spec, counter=False)
    for index in range(spec.num_frames):
        image = Image.fromarray(sv.render_frame(bare, index))
        width, height = image.size
        draw = ImageDraw.Draw(image)
        text = f"{sv.distance_at(spec, index / spec.fps):7.2f} m"
        font = ImageFont.load_default(size=max(8, int(round(height * 0.045))))
        _, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x, y = int(width * 0.04), int(height * 0.94) - (bottom - top)
        draw.rectangle([x - 4, y + top - 3, x + right + 4, y + bottom + 3], fill=(0, 0, 0))
        draw.text((x, y), text, fill=(235, 235, 235), font=font)
        np.testing.assert_array_equal(sv.render_frame(spec, index), np.asarray(image))


def test_the_verb_reads_the_counter_and_falls_back_on_length(tmp_path, monkeypatch):
    monkeypatch.setattr(inspect_cli, "open_scorer", lambda *args, **kwargs: (ConstantScorer(), None))
    with_counter = sv.write_video(str(tmp_path / "videos" / "a.mp4"), _spec(sv.CounterStyle(), duration_s=3.0))
    without = sv.write_video(str(tmp_path / "videos" / "b.mp4"),
                             dataclasses.replace(_spec(sv.CounterStyle(), duration_s=3.0), counter=False))
    argv = ["--checkpoint", "x.pth", with_counter, without, "--out", str(tmp_path / "out"), "--every", "0.5",
            "--distance", "auto", "--length", "0:3", "--counter-range", "90:110", "--no-progress"]
    assert cli.run("sfr-jax inspect", inspect_cli.main, argv) == 0
    for name, source in (("a", "ocr"), ("b", "length")):
        with open(tmp_path / "out" / name / "frames.csv", newline="") as handle:
            assert {row["distance_source"] for row in csv.DictReader(handle)} == {source}
    # a counter outside --counter-range is rejected as a whole: the fallback, with the count said
    argv[argv.index("90:110")] = "0:50"
    argv[argv.index(str(tmp_path / "out"))] = str(tmp_path / "out2")
    assert cli.run("sfr-jax inspect", inspect_cli.main, argv) == 0
    said = json.load(open(tmp_path / "out2" / "a" / "events.json"))["settings"]["distance"]
    assert "0 of 6 samples read" in said and "rejected: 6 range" in said and "--length 0:3" in said


def test_search_backs_off_to_every_32nd_sample_until_a_counter_is_found(monkeypatch):
    searched = []
    monkeypatch.setattr(ocr, "locate", lambda frame: searched.append(int(frame[0, 0, 0])))
    reader = ocr.CounterReader()
    for sample in range(100):
        assert reader.read(np.full((8, 8, 3), sample, np.uint8)) is None
    assert searched == [0, 1, 2, 3, 4, 8, 16, 32, 64, 96] and reader.searches == 10
    assert reader.describe() == "no counter found (10 frame(s) searched)"
