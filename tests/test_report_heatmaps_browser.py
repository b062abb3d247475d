"""The report's heatmap toggle in a real headless Chromium: by default the key frames show, with the page's URL
ending in #heatmaps (the toggle on) the key frames' heatmap overlays show in their place. Checked on the
screenshot's pixels. CI installs Chromium (.ci/run) and sets SFR_JAX_REQUIRE_CHROMIUM=1, so there it cannot skip."""
import io
import os

import numpy as np
import pytest
from PIL import Image

from sfr_jax import fileio
from sfr_jax.inspection import report
from test_inspect_report import _browser, _chromium, _data

FRAME = [(200, 40, 40), (40, 200, 40)]  # the two key frames (test_inspect_report's _data)
MAP = (40, 60, 230)  # what the heatmap overlay of the first event is painted with here


def _jpeg(color):
    buffer = io.BytesIO()
    Image.new("RGB", (240, 192), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def _count(pixels, color, tolerance=30):
    return int((np.abs(pixels - np.array(color)).max(axis=2) <= tolerance).sum())


def _box(pixels, color, tolerance=10):
    ys, xs = np.nonzero(np.abs(pixels - np.array(color)).max(axis=2) <= tolerance)
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_heatmap_toggle_shows_the_overlay_in_place_of_the_key_frame(tmp_path):
    binary = _chromium()
    if binary is None:
        if os.environ.get("SFR_JAX_REQUIRE_CHROMIUM"):
            pytest.fail("SFR_JAX_REQUIRE_CHROMIUM is set but no Chromium is installed")
        pytest.skip("no Chromium installed (apt-get install chromium)")
    data = _data()
    data.heatmaps = {0: _jpeg(MAP)}  # only the first event has a map
    data.events[0].clock, data.events[0].clock_from, data.events[0].clock_to = 3, 2, 4
    page = fileio.write_text(str(tmp_path / "report.html"), report.render(data))
    shots = {}
    for name, url in (("off", f"file://{page}"), ("on", f"file://{page}#heatmaps")):
        shot = tmp_path / f"{name}.png"
        result = _browser(binary, tmp_path, f"--screenshot={shot}", url)
        assert shot.is_file(), result.stderr[-2000:]
        shots[name] = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    off, on = shots["off"], shots["on"]
    area = 160 * 128  # a thumbnail as the page draws it (160 px wide)
    assert _count(off, MAP) == 0 and _count(off, FRAME[0]) > 0.8 * area  # toggle off: the key frame
    # toggle on: its heatmap instead (a few reddish pixels remain: the timelines' dashed threshold lines)
    assert _count(on, FRAME[0]) < 0.01 * area and _count(on, MAP) > 0.8 * area
    assert _count(on, FRAME[1]) > 0.8 * area  # the event without a map keeps its key frame
    assert _box(on, MAP) == _box(off, FRAME[0])  # in the same place
    if os.environ.get("SFR_JAX_KEEP_SCREENSHOT"):
        Image.fromarray(on.astype(np.uint8)).save(os.environ["SFR_JAX_KEEP_SCREENSHOT"])
