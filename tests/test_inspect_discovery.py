"""No input is skipped without a word. inspect's folder walks take what FFmpeg opens as a video (an .ogv, an
.mxf, a video without an extension) and count and name every other file; predict's take what PIL takes for an
image (.ppm, .jfif, .tga, a PNG without an extension) and count and name the rest. The files are made here
with PyAV and PIL, the libraries that must then read them."""
import os
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from sfr_jax import cli
from sfr_jax.data import images
from sfr_jax.eval.decisions import Decisions
from sfr_jax.inspection import cli as inspect_cli
from sfr_jax.inspection import sources, video
from sfr_jax.predict import collect_images


def _video(path, fmt, codec, frames=6, rate=25):
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return str(path)


def _audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        chunk.sample_rate, chunk.pts = 8000, 0
        container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("walk")
    folder = root / "videos"
    folder.mkdir()
    _video(folder / "a.mp4", "mp4", "libx264")
    _video(folder / "b.ogv", "ogg", "libvpx")
    _video(folder / "c.mxf", "mxf", "mpeg2video")
    _video(folder / "d", "mp4", "libx264")  # no extension at all
    _video(folder / "e.nut", "nut", "ffv1")
    (folder / "notes.txt").write_text("pipe 7, upstream\n")
    (folder / "e.csv").write_text("time_s,distance_m\n0,0\n")
    _audio_only(folder / "tone.wav")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not looked at (documented)
    return folder


def test_a_walk_takes_what_ffmpeg_opens_and_names_the_rest(mixed):
    left = []
    found, problems = sources.expand([str(mixed)], left_out=left)
    assert [s.name for s in found] == ["a", "b", "c", "d", "e"] and problems == []
    assert [(arg, sorted(os.path.basename(p) for p in paths)) for arg, paths in left] == \
        [(str(mixed), ["e.csv", "notes.txt", "tone.wav"])]
    for source in found:  # and each of them really decodes
        reader = video.Reader(source, None)
        assert len(list(reader)) == 6 and reader.status.ok, (source.name, reader.status.message)


def test_without_left_out_the_left_files_are_problems_not_silence(mixed):
    found, problems = sources.expand([str(mixed / "*")])  # a glob is walked the same way
    assert len(found) == 5
    assert len(problems) == 1 and problems[0][1].startswith("3 other file(s) left out")
    assert "notes.txt" in problems[0][1] and "tone.wav" in problems[0][1]


def test_a_named_file_that_is_not_a_video_is_a_problem(mixed):
    found, problems = sources.expand([str(mixed / "tone.wav"), str(mixed / "d")])
    assert [s.name for s in found] == ["d"]
    assert problems == [(str(mixed / "tone.wav"), "not a video file: FFmpeg finds no video stream in it")]


class _Stub:
    codes, image_size, batch_size = ("RB",), 16, 4

    def __init__(self):
        self.decisions = Decisions.uncalibrated(self.codes)

    def logits(self, x):
        return np.zeros((len(x), 1), np.float32)


def test_the_count_says_what_was_found_and_what_was_left(mixed, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(inspect_cli, "open_scorer", lambda *a, **k: (_Stub(), None))
    argv = ["--checkpoint", "m.pth", str(mixed), "--out", str(tmp_path / "out"), "--no-progress"]
    assert cli.run("sfr-jax inspect", inspect_cli.main, argv) == 0
    err = capsys.readouterr().err
    assert f"{mixed}: 3 other file(s) left out, neither videos FFmpeg opens nor frames: e.csv, notes.txt, " \
           "tone.wav" in err
    assert "inspected 5, already done 0, failed 0 of 5 video(s)" in err and "3 other file(s) left out" in \
        err.strip().splitlines()[-1]


def test_predict_walk_takes_what_pil_opens_and_names_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    picture.save(folder / "a.ppm")
    picture.save(folder / "b.jfif", format="JPEG")
    picture.convert("L").save(folder / "c.pgm")
    picture.save(folder / "sub" / "d.tga")
    picture.save(folder / "e", format="PNG")  # no extension: PIL knows it by its content
    (folder / "notes.txt").write_text("frames of pipe 7\n")
    (folder / "labels.csv").write_text("filename,RB\na.ppm,1\n")
    paths, problems = collect_images([str(folder)])
    assert [os.path.relpath(p, folder) for p in paths] == ["a.ppm", "b.jfif", "c.pgm", "e", "sub/d.tga"]
    for path in paths:
        assert images.load(path, 16).shape == (16, 16, 3)
    assert problems == [(str(folder), "2 other file(s) left out, not images PIL opens: labels.csv, notes.txt")]
