"""inspect with a scorer that gives heatmaps: each event's key frame carries its class's map peak and clock
position (events.json, events.csv), the key frame with the map is written and shown by the report's toggle,
and a scorer without maps (or --no-heatmaps) leaves those fields empty."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from sfr_jax.data import synthetic_video as sv
from sfr_jax.eval.decisions import Decisions
from sfr_jax.inspection import run, sources

CODES = ("RB", "FO")
PLANTED = (sv.Planted("RB", 1.0, 4.0), sv.Planted("FO", 5.0, 8.0))
SPEC = sv.VideoSpec(seed=3, duration_s=9.0, fps=4, size=(160, 128), draw_height=64, planted=PLANTED)
SIZE, G = 32, 8
# where each class's map peaks (row, col of the 8 x 8 grid) and the clock hour that is from the centre
HOT = {"RB": ((1, 6), 2), "FO": ((7, 3), 6)}  # upper right: 1-2 o'clock (45 deg: 1.5 -> 2); bottom: 6


class MapScorer:
    """Fires a class while it is planted (frames are scored in order, so a counter of scored frames gives the
    time), with maps of one hot patch per class."""

    STANDARDS = {"RB": {"en13508": "BAB", "pacp": "CL"}, "FO": {}}

    def __init__(self, times):
        self.codes, self.image_size, self.batch_size = CODES, SIZE, 4
        self.decisions = Decisions.uncalibrated(CODES)
        self.times, self.seen = times, 0
        self.has_maps = True
        self.standards = self.STANDARDS  # a class file's `codes`

    def _logits(self, n):
        out = np.full((n, len(CODES)), -4.0, np.float32)
        for row in range(n):
            t = self.times[min(self.seen + row, len(self.times) - 1)]
            for j, code in enumerate(CODES):
                if any(p.code == code and p.start_s <= t < p.end_s for p in PLANTED):
                    out[row, j] = 4.0
        self.seen += n
        return out

    def logits_and_maps(self, x):
        maps = np.full((len(x), len(CODES), G, G), 0.5 / (G * G - 1), np.float32)
        for j, code in enumerate(CODES):
            (r, c), _ = HOT[code]
            maps[:, j] = 0.5 / (G * G - 1)
            maps[:, j, r, c] = 0.5
        return self._logits(len(x)), maps

    def logits(self, x):
        return self._logits(len(x))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    root = tmp_path_factory.mktemp("maps")
    return sv.write_video(str(root / "v" / "seg.mkv"), SPEC, "ffv1")


def _inspect(video, out, scorer, **options):
    inputs, _ = sources.expand([video])
    times = [i / SPEC.fps for i in range(SPEC.num_frames)]
    scorer = scorer(times)
    run.inspect_videos(scorer, inputs, str(out), run.InspectOptions(every_s=None, progress=False, batch=4,
                                                                    **options))
    return out / "seg"


def test_events_carry_the_key_frames_map_peak_and_clock(video, tmp_path):
    folder = _inspect(video, tmp_path, MapScorer)
    events = json.load(open(folder / "events.json"))["events"]
    assert sorted(e["class"] for e in events) == sorted(CODES)
    for e in events:
        (r, c), hour = HOT[e["class"]]
        assert (e["peak_x"], e["peak_y"]) == ((c + 0.5) / G, (r + 0.5) / G)
        assert (e["clock"], e["clock_from"], e["clock_to"]) == (hour, hour, hour)
        overlay = Image.open(folder / e["heatmap"])
        assert overlay.format == "JPEG" and overlay.size == Image.open(folder / e["thumbnail"]).size
    with open(folder / "events.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["clock"]) for r in rows] == [e["clock"] for e in events]
    page = (folder / "report.html").read_text()
    assert 'id="show-maps"' in page and page.count('class="heatmap"') == len(events)
    # standard codes from the class file, as given
    assert [e["standard_codes"] for e in events] == [MapScorer.STANDARDS[e["class"]] for e in events]
    assert [(r["code_en13508"], r["code_pacp"]) for r in rows] == \
        [("BAB", "CL") if e["class"] == "RB" else ("", "") for e in events]
    assert "en13508 BAB, pacp CL" in page


@pytest.mark.parametrize("how", ["scorer without maps", "--no-heatmaps"])
def test_without_maps_the_fields_stay_empty(video, tmp_path, how):
    if how == "scorer without maps":
        class Plain(MapScorer):
            has_maps = False

            def __init__(self, times):
                super().__init__(times)
                self.has_maps = False

        folder = _inspect(video, tmp_path, Plain)
    else:
        folder = _inspect(video, tmp_path, MapScorer, heatmaps=False)
    events = json.load(open(folder / "events.json"))["events"]
    assert events and all(e["clock"] is None and e["heatmap"] is None for e in events)
    assert 'id="show-maps"' not in (folder / "report.html").read_text()


def test_edited_standard_codes_make_a_finished_video_be_done_again(video, tmp_path):
    inputs, _ = sources.expand([video])
    times = [i / SPEC.fps for i in range(SPEC.num_frames)]
    options = run.InspectOptions(every_s=None, progress=False, batch=4)
    assert run.inspect_videos(MapScorer(times), inputs, str(tmp_path), options).done == ["seg"]
    assert run.inspect_videos(MapScorer(times), inputs, str(tmp_path), options).skipped == ["seg"]
    edited = MapScorer(times)
    edited.standards = {"RB": {"en13508": "BAC"}, "FO": {}}
    assert run.inspect_videos(edited, inputs, str(tmp_path), options).done == ["seg"]
    events = json.load(open(tmp_path / "seg" / "events.json"))["events"]
    assert [e["standard_codes"] for e in events if e["class"] == "RB"] == [{"en13508": "BAC"}]
