"""inspect's reading of videos: a lossless video decodes to exactly the rendered frames (what predict would
read from PNGs of them); samples are the first frames at or after k * period; cut, zero-byte and junk files
get their status; the read-ahead thread; the quality gate's decisions against the paper's blur metric and planted
dark, blank and blurred frames."""
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from sfr_jax.data import images
from sfr_jax.data import synthetic_video as sv
from sfr_jax.inspection import quality, video
from sfr_jax.inspection.sources import Source

SPEC = sv.VideoSpec(seed=3, duration_s=3.0, fps=10, size=(96, 80), draw_height=64,
                    planted=(sv.Planted("RB", 1.0, 2.0),))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {codec: sv.write_video(str(root / f"v{sv.CODECS[codec][3]}"), SPEC, codec) for codec in ("ffv1", "h264")}


def _read(path, every=None):
    reader = video.Reader(Source(path, "v"), every)
    samples = list(reader)
    return samples, reader.status


def test_lossless_video_decodes_to_the_rendered_pixels(videos, tmp_path):
    samples, status = _read(videos["ffv1"])
    assert status.state == video.OK and status.frames_decoded == SPEC.num_frames == len(samples)
    for sample in samples:
        index = int(round(sample.time_s * SPEC.fps))
        assert abs(sample.time_s - index / SPEC.fps) < 1e-6
        rendered = sv.render_frame(SPEC, index)
        np.testing.assert_array_equal(sample.frame, rendered)
    # the model input of a decoded frame equals predict's loader on the same frame saved as PNG
    png = tmp_path / "frame.png"
    Image.fromarray(sv.render_frame(SPEC, 7)).save(png)
    np.testing.assert_array_equal(images.from_array(samples[7].frame, 32), images.load(str(png), 32))


def test_lossy_video_is_close_to_the_rendered_frames(videos):
    samples, status = _read(videos["h264"], every=0.5)
    assert status.ok and [s.time_s for s in samples] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    for sample in samples:
        rendered = sv.render_frame(SPEC, int(round(sample.time_s * SPEC.fps))).astype(float)
        assert np.abs(sample.frame.astype(float) - rendered).mean() < 4.0


@pytest.mark.parametrize("every,times", [
    (0.25, [0.0, 0.3, 0.5, 0.8]),  # first frame at or after 0, 0.25, 0.5, 0.75
    (0.35, [0.0, 0.4, 0.7]),  # after 0.4 the next sample is 0.7 (= 2 * 0.35), then 1.05 is past the end
    (0.05, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),  # fewer frames than samples: each once
])
def test_sampling_takes_the_first_frame_at_or_after_each_sample_time(tmp_path, every, times):
    spec = sv.VideoSpec(duration_s=1.0, fps=10, size=(32, 32), draw_height=32, counter=False)
    path = sv.write_video(str(tmp_path / "s.mkv"), spec, "ffv1")
    samples, _ = _read(path, every)
    assert [round(s.time_s, 6) for s in samples] == times and [s.index for s in samples] == list(range(len(times)))


@pytest.mark.parametrize("name,codec", [("a.mp4", "h264"), ("a.avi", "mpeg4"), ("a.mkv", "h264"),
                                        ("a.mpg", "mpeg2"), ("a.mov", "h264"), ("a.wmv", "wmv2"), ("a.ts", "mpeg2")])
def test_common_containers_decode_every_frame_at_its_time(tmp_path, name, codec):
    spec = sv.VideoSpec(duration_s=1.0, fps=10, size=(64, 48), draw_height=48)
    samples, status = _read(sv.write_video(str(tmp_path / name), spec, codec))
    assert status.ok, status
    assert [round(s.time_s, 3) for s in samples] == [i / 10 for i in range(10)]
    for i, sample in enumerate(samples):
        assert sample.frame.shape == (48, 64, 3)
        assert np.abs(sample.frame.astype(float) - sv.render_frame(spec, i)).mean() < 8


def test_times_start_at_the_stream_start(tmp_path):
    spec = sv.VideoSpec(duration_s=1.0, fps=10, size=(32, 32), draw_height=32, counter=False)
    path = sv.write_video(str(tmp_path / "s.mpg"), spec, "mpeg2")  # MPEG-PS streams start later than 0
    samples, status = _read(path)
    assert status.ok and [round(s.time_s, 6) for s in samples] == [i / 10 for i in range(10)]


def _cut(path, out, fraction):
    data = open(path, "rb").read()
    with open(out, "wb") as handle:
        handle.write(data[:int(len(data) * fraction)])
    return str(out)


def test_cut_zero_byte_and_junk_files_get_a_status(tmp_path):
    spec = sv.VideoSpec(duration_s=6.0, fps=10, size=(96, 80), draw_height=64)
    mp4 = sv.write_video(str(tmp_path / "full.mp4"), spec, "h264")
    mkv = sv.write_video(str(tmp_path / "full.mkv"), spec, "h264")
    for path in (_cut(mp4, tmp_path / "cut.mp4", 0.5), _cut(mkv, tmp_path / "cut.mkv", 0.5)):
        samples, status = _read(path, 0.5)
        assert status.state == video.TRUNCATED, (path, status)
        assert 1 <= len(samples) < 12 and "stopped at" in status.message and "of 6.00 s" in status.message
        assert f"{samples[-1].time_s:.2f} s" in status.message or status.last_s > samples[-1].time_s
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _read(str(empty)) == ([], video.Status(state=video.EMPTY, message="zero-byte file"))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    samples, status = _read(str(junk))
    assert samples == [] and status.state == video.UNREADABLE
    samples, status = _read(str(tmp_path / "gone.mp4"))
    assert status.state == video.UNREADABLE and "no such file" in status.message


def test_frame_folder_reads_in_time_order_and_skips_unreadable_images(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    paths = []
    for t, p in zip((0.0, 0.5, 1.0), pixels):
        paths.append(str(tmp_path / f"{t:010.3f}.png"))
        Image.fromarray(p).save(paths[-1])
    broken = str(tmp_path / "1.5.png")
    open(broken, "wb").write(b"\x89PNG\r\n\x1a\nnot really")
    source = Source(str(tmp_path), "f", tuple(zip((0.0, 0.5, 1.0, 1.5), paths + [broken])))
    reader = video.Reader(source, None)
    samples = list(reader)
    assert [s.time_s for s in samples] == [0.0, 0.5, 1.0]
    for sample, p in zip(samples, pixels):
        np.testing.assert_array_equal(sample.frame, p)
    assert reader.status.state == video.DAMAGED and "1.5.png" in reader.status.message


def test_ahead_runs_in_a_thread_and_passes_errors_on():
    seen = []

    def produce():
        for i in range(5):
            seen.append(threading.current_thread().name)
            yield i

    assert list(video.ahead(produce(), depth=2, transform=lambda x: x * 10)) == [0, 10, 20, 30, 40]
    assert set(seen) == {"inspect-decode"}

    def slow_square(x):  # out-of-order finishing: results must still come in order
        time.sleep((x * 7) % 5 * 0.002)
        return x * x, threading.current_thread().name

    results = list(video.ahead(iter(range(40)), depth=4, transform=slow_square, workers=3))
    assert [r for r, _ in results] == [i * i for i in range(40)]
    assert all(name.startswith("inspect-prepare") for _, name in results)

    def failing():
        yield 1
        raise RuntimeError("decoder broke")

    with pytest.raises(RuntimeError, match="decoder broke"):
        list(video.ahead(failing()))

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    for item in video.ahead(endless(), depth=3):
        if item == 4:
            break
    assert closed.wait(5)  # the producer was stopped and closed


def _reference_blur(grey):
    """Crete et al. 2007, written from the paper with scipy's mean filter."""
    from scipy.ndimage import uniform_filter1d

    values = []
    for axis in (0, 1):
        blurred = uniform_filter1d(grey, 9, axis=axis, mode="nearest")
        d_f = np.abs(np.diff(grey, axis=axis))
        d_b = np.abs(np.diff(blurred, axis=axis))
        s_f, s_v = d_f.sum(), np.maximum(0, d_f - d_b).sum()
        values.append((s_f - s_v) / s_f)
    return max(values)


def test_blur_gate_decides_as_the_paper_metric_did():
    """scikit-image's Sobel-based blur effect at 0.7 flags the same frames as the paper's pixel differences at
    0.6 (the gate's own earlier metric), on sharp, dim, noisy and increasingly blurred frames."""
    config = quality.QualityConfig()
    decisions, seen = 0, set()
    for seed in (1, 2, 5):
        spec = sv.VideoSpec(seed=seed, size=(360, 288))
        for index in (0, 21, 35):
            frame = sv.render_frame(spec, index)
            noisy = np.clip(frame + np.random.default_rng(seed).normal(0, 20, frame.shape), 0, 255)
            cases = [frame, (frame * 0.2).astype(np.uint8), noisy.astype(np.uint8)]
            cases += [np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(s))) for s in (1, 2, 3, 4, 8)]
            for case in cases:
                paper = _reference_blur(quality.luma_region(case, config)) > 0.6
                assert quality.assess(case, config).blurred == paper
                decisions, seen = decisions + 1, seen | {paper}
    assert decisions == 72 and seen == {True, False}
    assert quality.blur_effect(np.full((40, 60), 7.0)) == 1.0  # a flat frame has nothing sharp left


def test_quality_gate_flags_dark_blank_and_blurred_frames_only():
    config = quality.QualityConfig()
    spec = sv.VideoSpec(seed=5, size=(360, 288))
    normal = [sv.render_frame(spec, i * 7) for i in range(6)]
    for frame in normal:
        assert quality.assess(frame, config).flags == []
    frame = normal[0]
    dark = (frame * 0.2).astype(np.uint8)
    flags = quality.assess(dark, config).flags
    assert "dark" in flags and "blurred" not in flags  # dim is not blurred (low contrast may read as uniform)
    blank = np.full_like(frame, 90)
    blank[-30:, :120] = 255  # a counter burnt into a blank screen does not make it a picture
    assert "uniform" in quality.assess(blank, config).flags
    blurred = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(8)))
    assert quality.assess(blurred, config).flags == ["blurred"]
    off = quality.QualityConfig(dark=False, uniform=False, blur=False)
    assert not quality.assess(blank, off).flagged and not quality.assess(dark, off).flagged
