"""report.html: outside text escaped, long timelines thinned without losing peaks, and the page rendered by
a real headless Chromium (skipped where none is installed): the screenshot shows the timelines' events and
lines, and the DOM holds one timeline SVG per class and one table row per event."""
import base64
import io
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from sfr_jax import fileio
from sfr_jax.inspection import events as ev
from sfr_jax.inspection import report

CODES = ("RB", "FO", "IN")
EVENT_FILL = (246, 219, 166)  # #f4b942 at 45 % over the timeline's #f7f7f7 background
SMOOTH_LINE = (31, 79, 138)  # #1f4f8a


def _jpeg(color):
    buffer = io.BytesIO()
    Image.new("RGB", (240, 192), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def _data(name="seg<1>", n=600, video_src=None):
    times = np.arange(n) * 0.5
    p = np.full((n, len(CODES)), 0.05)
    p[100:220, 0] = 0.9
    p[400:404, 1] = 0.8
    flagged = np.zeros(n, bool)
    flagged[300:320] = True
    found = [ev.Event("RB", "continuous", 50.0, 109.5, 0.9, 60.0, 120, 120, 1.0, 9.5),
             ev.Event("FO", "continuous", 200.0, 201.5, 0.8, 200.5, 401, 4, None, None)]
    return report.ReportData(
        name, "/videos/<seg1>.mp4", "truncated", 'stopped at 299.50 s: "cut"', 300.0, CODES,
        np.array([0.5, 0.5, 0.5]), times, p, ev.smoothed_probabilities(p, ~flagged, ev.EventConfig()), flagged,
        {"dark": 20, "uniform": 0, "blurred": 0}, found, {0: _jpeg((200, 40, 40)), 1: _jpeg((40, 200, 40))},
        {"sampling": "every 0.5 s", "note": "<b>not bold</b>"}, video_src)


def test_outside_text_is_escaped():
    page = report.render(_data(name='<img src=x onerror="alert(1)">'))
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    assert "<b>not bold</b>" not in page and "&lt;seg1&gt;.mp4" in page and "&quot;cut&quot;" in page
    assert page.count("<script>") == 1
    page = report.render(_data(video_src="../videos/a%20b.mp4"))
    assert 'src="../videos/a%20b.mp4"' in page and "onclick=\"return seek(50.000)\"" in page


def test_envelope_keeps_every_peak():
    values = np.zeros(100_000)
    values[[17, 55_555, 99_999]] = [0.7, 1.0, 0.9]
    times, peaks = report.envelope(np.arange(100_000.0), values, 1000)
    assert len(times) == 1000 and sorted(peaks[peaks > 0]) == [0.7, 0.9, 1.0]
    _, short_v = report.envelope(np.arange(5.0), np.arange(5.0), 1000)
    assert list(short_v) == [0, 1, 2, 3, 4]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _browser(binary, tmp_path, *args):
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    binary = _chromium()
    page = fileio.write_text(str(tmp_path / "report.html"), report.render(_data()))
    shot = tmp_path / "shot.png"
    result = _browser(binary, tmp_path, f"--screenshot={shot}", f"file://{page}")
    assert shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.std() > 10  # not a blank page

    def count(color, tolerance=6):
        return int((np.abs(pixels - np.array(color)).max(axis=2) <= tolerance).sum())

    assert count(EVENT_FILL) > 1000  # the RB event shaded across ~20 % of a timeline
    assert count(SMOOTH_LINE, 20) > 500  # the smoothed probability lines
    assert count((200, 40, 40), 30) > 5000 and count((40, 200, 40), 30) > 5000  # both thumbnails shown
    dom = _browser(binary, tmp_path, "--dump-dom", f"file://{page}").stdout
    assert len(re.findall(r'<svg class="timeline"', dom)) == len(CODES)
    assert len(re.findall(r'<tr id="event-\d+"', dom)) == 2
    assert dom.count('<img alt="key frame') == 2 and 'class="axis"' in dom
    assert "&lt;seg1&gt;" in dom and "<seg1>" not in dom
    if os.environ.get("SFR_JAX_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["SFR_JAX_KEEP_SCREENSHOT"])


def test_thumbnails_are_embedded_as_base64():
    data = _data()
    page = report.render(data)
    for jpeg in data.thumbnails.values():
        assert base64.b64encode(jpeg).decode("ascii") in page
