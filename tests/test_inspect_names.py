"""User text never steers an output path: video names and class codes become safe file names (one sanitiser,
fileio.safe_name) and every output path is checked to stay under --out (fileio.path_under). The names are
invented here: ../, /, \\, NUL, undecodable bytes, very long, unicode, leading dots, names that collide."""
import csv
import os
import shutil

import numpy as np
import pytest

from sfr_jax.data import synthetic_video as sv
from sfr_jax.errors import OutputError
from sfr_jax.eval.decisions import Decisions
from sfr_jax.fileio import path_under, safe_name
from sfr_jax.inspection import quality, run, sources


@pytest.mark.parametrize("text", [
    "a/../../../../x", "../../etc/passwd", "..", ".", "", ".hidden", "a\\..\\b", "a\x00b", "\udcff\udcfe",
    "x" * 400, "日本語" * 50, "  . ", "con", "a\nb", "\u202eevil",
])
def test_safe_name_is_one_plain_name_inside_any_folder(text, tmp_path):
    name = safe_name(text)
    assert name and "/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")
    assert len(name.encode("utf-8")) <= 100 and name.isprintable()
    assert os.path.dirname(path_under(str(tmp_path), name)) == str(tmp_path)
    open(path_under(str(tmp_path), name), "w").close()  # the file system takes it
    assert os.listdir(tmp_path) == [name]


def test_long_names_stay_distinct_and_readable_ones_stay_as_they_are():
    assert safe_name("x" * 300 + "a") != safe_name("x" * 300 + "b")
    assert safe_name("Pipe 12 (upstream)") == "Pipe 12 (upstream)" and safe_name("Kanal-ä_1") == "Kanal-ä_1"


@pytest.mark.parametrize("parts", [("..",), ("a", "..", ".."), ("/etc/passwd",), ("a\x00",), ("",), (".",)])
def test_path_under_refuses_what_leaves_the_folder(parts, tmp_path):
    with pytest.raises(OutputError):
        path_under(str(tmp_path / "out"), *parts)


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    spec = sv.VideoSpec(seed=3, duration_s=1.0, fps=10, size=(32, 32), draw_height=32)
    return sv.write_video(str(tmp_path_factory.mktemp("v") / "tiny.mp4"), spec, "h264")


def test_odd_video_names_get_distinct_safe_output_folders(tiny_video, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    stems = ["a_b", "a\\b", ".hidden", "..x", "y" * 240, "Straße 1", "A_B", "tab\there"]
    for stem in stems:
        shutil.copy(tiny_video, folder / f"{stem}.mp4")
    os.link(tiny_video, os.fsencode(str(folder)) + b"/\xff\xfe.mp4")  # not UTF-8: a surrogate in Python
    hidden = [str(folder / ".hidden.mp4"), str(folder / "..x.mp4")]  # a walk passes hidden files by; named, taken
    inputs, problems = sources.expand([str(folder)] + hidden)
    assert len(inputs) == len(stems) + 1 and not problems
    names = [s.name for s in inputs]
    assert len({n.lower() for n in names}) == len(names)  # a_b, a\b and A_B collide after sanitising: told apart
    assert all(n == safe_name(n) and not n.startswith(".") for n in names)
    out = tmp_path / "out"
    summary = run.inspect_videos(_Stub(("RB",)), inputs, str(out), run.InspectOptions(progress=False))
    assert len(summary.done) == len(inputs) and not summary.failed
    assert sorted(os.listdir(out)) == sorted(names + ["summary.csv"])
    assert all(os.path.isfile(out / n / "record.json") for n in names)
    with open(out / "summary.csv", newline="", encoding="utf-8") as handle:  # the undecodable name is written
        assert len(list(csv.DictReader(handle))) == len(inputs)


class _Stub:
    """Every class fires at every frame; codes are whatever the test gives (a scorer need not use ClassSet)."""

    def __init__(self, codes):
        self.codes, self.image_size, self.batch_size = tuple(codes), 16, 4
        self.decisions = Decisions.uncalibrated(self.codes)

    def logits(self, x):
        return np.full((len(x), len(self.codes)), 4.0, np.float32)


def test_codes_that_slip_past_the_class_file_still_write_only_under_out(tiny_video, tmp_path):
    out = tmp_path / "deep" / "out"
    codes = ("a/../../../../x", "..", "b\\c")
    inputs, _ = sources.expand([tiny_video])
    no_gate = quality.QualityConfig(dark=False, uniform=False, blur=False)
    run.inspect_videos(_Stub(codes), inputs, str(out), run.InspectOptions(every_s=0.5, progress=False,
                                                                          quality=no_gate))
    outside = [os.path.join(r, f) for r, _, fs in os.walk(tmp_path) for f in fs
               if not os.path.join(r, f).startswith(str(out) + os.sep) and "/v" not in r]
    assert outside == []
    with open(out / "tiny" / "events.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(codes)
    for row in rows:  # every thumbnail events.csv names exists, one level under thumbnails/
        assert os.path.isfile(out / "tiny" / row["thumbnail"]) and row["thumbnail"].count("/") == 1
