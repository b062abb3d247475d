"""The synthetic renderer says where it drew each defect: the region is exactly the pixels that differ from the
same frame without the defect, and a motif drawn at a known angle of the scene's geometry gets its clock hour."""
import math

import numpy as np
import pytest

from sfr_jax.data import clock, synthetic
from sfr_jax.data import synthetic_video as sv


def _render(labels, planted=None, style="web"):
    return np.asarray(synthetic.render(np.random.default_rng([4, 0]), labels, 96, style, 10,
                                       defect_rng=np.random.default_rng([4, 1]), planted=planted), np.int16)


@pytest.mark.parametrize("code", ["GR", "FO", "AF", "BE", "RO", "IS"])
def test_region_is_the_pixels_the_motif_changed(code):
    planted = []
    with_defect = _render({code: 1}, planted)
    without = _render({})
    differ = np.any(with_defect != without, axis=-1)
    (region,) = planted
    assert region.code == code and region.mask.shape == differ.shape
    assert differ.any() and not (differ & ~region.mask).any()  # nothing changed outside the region
    # inside it only the web style's clipping at white may hide a change
    hidden = region.mask & ~differ
    assert hidden.sum() <= 0.05 * region.mask.sum() or (with_defect[hidden] >= 254).all()
    np.testing.assert_array_equal(_render({code: 1}), with_defect)  # asking for regions changes no pixel


@pytest.mark.parametrize("t, hour", [(math.pi / 2, 3), (-math.pi / 2, 9), (0.62 * math.pi, 2),
                                     (-0.7 * math.pi, 10), (0.5 * math.pi + 0.2, 3)])
def test_a_connection_drawn_at_a_known_angle_has_its_clock_hour(monkeypatch, t, hour):
    # _Scene.project: angle t = 0 is the bottom (6 o'clock), t = pi/2 the right wall (3), pi the top (12)
    assert clock.hour(math.degrees(math.pi - t)) == hour
    monkeypatch.setattr(synthetic, "_side", lambda rng: t)
    planted = []
    _render({"PB": 1}, planted, style="cctv")
    (region,) = planted
    assert region.clock == hour and clock.hour_distance(region.clock_from, hour) <= 1
    assert clock.hour_distance(region.clock_to, hour) <= 1


def test_video_frames_return_their_regions_at_any_size():
    spec = sv.VideoSpec(seed=2, duration_s=2.0, fps=2, size=(200, 160), draw_height=64,
                        planted=(sv.Planted("GR", 0.0, 1.0), sv.Planted("AF", 0.5, 2.0)))
    got = []
    sv.render_frame(spec, 1, planted=got)  # t = 0.5 s: both
    assert [r.code for r in got] == ["AF", "GR"]  # drawn in CODES order
    box = got[1].box
    assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
    assert got[1].covers(*box) and not got[1].covers(0.0, 0.0, 0.02, 0.02)
    plain = []
    np.testing.assert_array_equal(sv.render_frame(spec, 3, planted=plain), sv.render_frame(spec, 3))
    assert [r.code for r in plain] == ["AF"]


def test_a_ring_round_the_pipe_spans_the_whole_clock():
    planted = []
    _render({"FS": 1}, planted)  # the displaced joint: a ring round the pipe
    assert planted[0].span_deg > 300
    planted = []
    _render({"PB": 1}, planted)  # one connection on a side wall
    assert planted[0].span_deg < 90


def test_a_map_that_covers_the_planted_region_gets_its_clock_hour_within_one():
    # the two halves of a clock reading agree: the renderer's truth (drawn pixels) and heatmaps.clock_position
    # (patch mass) use one convention, so a perfect map of a local defect reads the drawn hour within +-1
    from sfr_jax.eval import heatmaps

    g, hits, trials = 8, 0, 0
    for seed in range(12):
        for code in ("PB", "GR", "OS", "OK", "BE", "AF"):
            planted = []
            synthetic.render(np.random.default_rng([seed, 0]), {code: 1}, 96, "cctv", 10,
                             defect_rng=np.random.default_rng([seed, 1]), planted=planted)
            region = planted[0]
            if region.box is None or region.span_deg > 90:
                continue
            h, w = region.mask.shape
            cells = np.array([[region.mask[r * h // g:(r + 1) * h // g, c * w // g:(c + 1) * w // g].mean()
                               for c in range(g)] for r in range(g)])
            heat = 0.5 * cells / cells.sum() + 0.5 / g ** 2  # the region's mass over a uniform floor
            position = heatmaps.clock_position(heat, region.axis)
            trials += 1
            hits += clock.hour_distance(position["hour"], region.clock) <= 1
    assert trials >= 40 and hits >= 0.95 * trials, (hits, trials)
