"""Time and picture as a player shows them. Videos are made here with PyAV, each frame carrying its own
number in 8 black/white blocks (read back from the decoded picture), so a frame's time can be checked
against the time it was planted at: a picture that starts 2 s after its audio (MPEG-TS and Matroska), two
recordings joined with `cat` (timestamps restart), and a display matrix (phone rotation metadata)."""
from fractions import Fraction

import av
import numpy as np
import pytest

from sfr_jax.inspection import video
from sfr_jax.inspection.sources import Source

FPS, BLOCK = 10, 16


def _numbered(i: int) -> np.ndarray:
    """RGB [32, 128, 3]: block b (16 px wide) white when bit b of i is set."""
    frame = np.zeros((32, 8 * BLOCK, 3), np.uint8)
    for b in range(8):
        if i >> b & 1:
            frame[:, b * BLOCK:(b + 1) * BLOCK] = 255
    return frame


def _number(rgb: np.ndarray) -> int:
    means = [rgb[:, b * BLOCK + 3:(b + 1) * BLOCK - 3].mean() for b in range(8)]
    return sum(1 << b for b, m in enumerate(means) if m > 128)


def _write(path, fmt, frames, first=0, video_start_s=0.0, audio_s=None, rotation=None):
    """Frames numbered first.. at FPS, the first shown at video_start_s; optionally a mono audio track from
    0 to audio_s seconds (so that the picture starts after the audio)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("mpeg2video" if fmt == "mpegts" else "libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 8 * BLOCK if rotation is None else 64, 32, "yuv420p"
        stream.bit_rate = 4_000_000
        if rotation is not None:
            stream.set_display_rotation(rotation)
        audio = container.add_stream("mp2", rate=48000, layout="mono") if audio_s else None
        if audio:
            for k in range(int(audio_s * 48000 / 1152)):
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, k * 1152, Fraction(1, 48000)
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
        offset = round(video_start_s * FPS)
        for k, number in enumerate(frames):
            picture = _numbered(number) if rotation is None else _marked()
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = offset + k, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return str(path)


def _read(path, every=None):
    reader = video.Reader(Source(str(path), "v"), every)
    samples = list(reader)
    return [(round(s.time_s, 3), s.frame) for s in samples], reader.status


@pytest.mark.parametrize("fmt, ext", [("mpegts", "ts"), ("matroska", "mkv")])
def test_a_picture_starting_after_its_audio_keeps_the_players_times(tmp_path, fmt, ext):
    path = _write(tmp_path / f"late.{ext}", fmt, range(20), video_start_s=2.0, audio_s=5.0)
    samples, status = _read(path)
    assert [_number(frame) for _, frame in samples] == list(range(20))
    # the TS muxer moves the picture by 10 ms (ffprobe: video start_time 2.010022); a player shows that too
    assert [t for t, _ in samples] == pytest.approx([2.0 + i / FPS for i in range(20)], abs=0.015)
    assert status.ok, status.message


def test_recordings_joined_with_cat_are_read_whole(tmp_path):
    first = _write(tmp_path / "a.ts", "mpegts", range(30))
    second = _write(tmp_path / "b.ts", "mpegts", range(30, 60))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(open(first, "rb").read() + open(second, "rb").read())  # what `cat a.ts b.ts` does
    samples, status = _read(joined)
    assert [_number(frame) for _, frame in samples] == list(range(60))
    assert [t for t, _ in samples] == pytest.approx([i / FPS for i in range(60)], abs=2e-3)
    assert status.restarts == 1 and "timestamps restart at 3.00 s" in status.notes[0]
    assert status.duration_s == pytest.approx(6.0, abs=0.05)
    every_second, _ = _read(joined, every=1.0)  # sampling goes on past the join too
    assert [_number(frame) for _, frame in every_second] == [0, 10, 20, 30, 40, 50]


def _marked() -> np.ndarray:
    """RGB [32, 64, 3] black with a white 8x8 marker in the top-left corner, as stored."""
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:8, :8] = 255
    return frame


@pytest.mark.parametrize("rotation, corner", [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right"),
                                              (0, "top-left")])
def test_the_display_matrix_turns_the_picture_as_players_do(tmp_path, rotation, corner):
    """A display matrix rotation is counter-clockwise (FFmpeg's av_display_rotation_get, PyAV's
    set_display_rotation): turning the 64x32 stored picture 90 degrees counter-clockwise puts its top-left
    corner at the bottom left of a 32x64 picture; -90 (a phone held upright) at the top right."""
    samples, status = _read(_write(tmp_path / "phone.mp4", "mp4", range(3), rotation=rotation))
    picture = samples[0][1]
    assert picture.shape[:2] == ((32, 64) if rotation in (0, 180) else (64, 32))
    h, w = picture.shape[:2]
    corners = {"top-left": picture[:8, :8], "top-right": picture[:8, w - 8:],
               "bottom-left": picture[h - 8:, :8], "bottom-right": picture[h - 8:, w - 8:]}
    assert {name: bool(block.mean() > 128) for name, block in corners.items()} == \
        {name: name == corner for name in corners}
    assert bool(status.notes) == (rotation != 0)


def test_inspect_scores_a_joined_file_whole_and_says_so(tmp_path):
    import csv

    from sfr_jax.eval.decisions import Decisions
    from sfr_jax.inspection import run, sources

    class Stub:
        codes, image_size, batch_size = ("RB",), 16, 4
        decisions = Decisions.uncalibrated(("RB",))

        def logits(self, x):
            return np.zeros((len(x), 1), np.float32)

    joined = tmp_path / "joined.ts"
    joined.write_bytes(b"".join(open(_write(tmp_path / f"{n}.ts", "mpegts", range(30 * n, 30 * n + 30)), "rb").read()
                                for n in (0, 1)))
    inputs, _ = sources.expand([str(joined)])
    summary = run.inspect_videos(Stub(), inputs, str(tmp_path / "out"), run.InspectOptions(progress=False))
    assert summary.failed == [] and [n for _, n in summary.notes][0].startswith("timestamps restart at 3.00 s")
    with open(tmp_path / "out" / "joined" / "frames.csv", newline="") as handle:
        times = [float(row["time_s"]) for row in csv.DictReader(handle)]
    assert times == pytest.approx([0, 1, 2, 3, 4, 5], abs=2e-3)
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    assert row["status"] == "ok" and "timestamps restart" in row["notes"] and float(row["duration_s"]) > 5.9
