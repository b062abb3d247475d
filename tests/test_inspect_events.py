"""inspect's event logic on hand-computed cases: running median, hysteresis, runs, gap merge, point vs
continuous, flagged samples left out, peaks; the distance sidecar (interpolation and its errors); --length;
planted-vs-found matching."""
import numpy as np
import pytest

from sfr_jax.data.synthetic_video import Planted
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.inspection import compare
from sfr_jax.inspection import events as ev
from sfr_jax.inspection.distance import DistanceTable, LinearLength, parse_length


def test_running_median_hand_case_and_windows():
    x = np.array([0, 1, 0, 0, 1, 1, 0, 1], float)
    # ends padded with the edge value: [0, 0, 1, 0, 0, 1, 1, 0, 1, 1]
    np.testing.assert_array_equal(ev.running_median(x, 3), [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(ev.running_median(x, 1), x)
    rng = np.random.default_rng(0)
    values = rng.random((40, 3))
    got = ev.running_median(values, 5)
    for i in range(40):
        window = [values[min(max(j, 0), 39)] for j in range(i - 2, i + 3)]
        np.testing.assert_allclose(got[i], np.median(window, axis=0))


def test_hysteresis_turns_on_at_threshold_and_off_below_margin():
    values = np.array([0.2, 0.5, 0.48, 0.46, 0.44, 0.6, 0.3, 0.45])
    on = ev.hysteresis(values, 0.5, 0.45)
    np.testing.assert_array_equal(on, [False, True, True, True, False, True, False, False])
    np.testing.assert_array_equal(ev.hysteresis(values, 0.5, 0.5), values >= 0.5)


def test_runs_and_gap_merge():
    mask = np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)
    spans = ev.runs(mask)
    assert spans == [(1, 2), (4, 4), (7, 7)]
    times = np.arange(8) * 0.5  # gaps: 2.0 - 1.0 = 1.0 s, then 3.5 - 2.0 = 1.5 s
    assert ev.merge_runs(spans, times, 0.9) == spans
    assert ev.merge_runs(spans, times, 1.0) == [(1, 4), (7, 7)]
    assert ev.merge_runs(spans, times, 1.5) == [(1, 7)]
    assert ev.runs(np.zeros(4, bool)) == [] and ev.runs(np.ones(3, bool)) == [(0, 2)]


def test_events_point_continuous_peak_and_flagged_samples():
    times = np.arange(10.0)
    a = np.array([0.1, 0.7, 0.95, 0.8, 0.1, 0.1, 0.9, 0.9, 0.1, 0.99])
    b = np.full(10, 0.2)
    probabilities = np.stack([a, b], 1)
    config = ev.EventConfig(smooth=1, margin=0.0, merge_gap_s=1.0, point_below_s=1.5)
    found = ev.find_events(times, probabilities, np.array([0.5, 0.5]), ("A", "B"), config=config)
    assert [(e.code, e.kind, e.start_s, e.end_s) for e in found] == [
        ("A", "continuous", 1.0, 3.0), ("A", "point", 6.0, 7.0), ("A", "point", 9.0, 9.0)]
    assert (found[0].peak_probability, found[0].peak_s, found[0].peak_sample, found[0].samples) == (0.95, 2.0, 2, 3)
    # flagged samples are left out: the peak frame (2) and the last one (9)
    usable = np.ones(10, bool)
    usable[[2, 9]] = False
    found = ev.find_events(times, probabilities, np.array([0.5, 0.5]), ("A", "B"), usable, config)
    assert [(e.start_s, e.end_s, e.peak_s, e.peak_probability, e.samples) for e in found] == [
        (1.0, 3.0, 3.0, 0.8, 2), (6.0, 7.0, 6.0, 0.9, 2)]
    # a wider merge gap joins the two runs (gap 6 - 3 = 3 s); the non-firing samples inside count
    merged = ev.find_events(times, probabilities, np.array([0.5, 0.5]), ("A", "B"), usable,
                            ev.EventConfig(smooth=1, margin=0.0, merge_gap_s=3.0, point_below_s=1.5))
    assert [(e.start_s, e.end_s, e.kind, e.samples) for e in merged] == [(1.0, 7.0, "continuous", 6)]


def test_smoothing_removes_a_one_sample_blip_and_keeps_a_step():
    times = np.arange(12) * 0.5
    p = np.array([0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])[:, None]
    found = ev.find_events(times, p, np.array([0.5]), ("A",), config=ev.EventConfig(smooth=3))
    assert [(e.start_s, e.end_s) for e in found] == [(3.0, 5.5)]


def test_event_thresholds_are_per_class_and_sorted_by_time():
    times = np.arange(4.0)
    p = np.array([[0.3, 0.0], [0.3, 0.9], [0.0, 0.9], [0.0, 0.0]])
    found = ev.find_events(times, p, np.array([0.25, 0.5]), ("A", "B"), config=ev.EventConfig(smooth=1))
    assert [(e.code, e.start_s, e.end_s) for e in found] == [("A", 0.0, 1.0), ("B", 1.0, 2.0)]


def test_event_config_is_validated():
    with pytest.raises(ValueError, match="odd"):
        ev.EventConfig(smooth=4)
    with pytest.raises(ValueError, match="margin"):
        ev.EventConfig(margin=-0.1)


def _sidecar(tmp_path, text, name="seg.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_distance_sidecar_interpolates_inside_its_range(tmp_path):
    path = _sidecar(tmp_path, "time_s,distance_m,note\n0,0,start\n10,5,\n\n20,5,stop\n30,2,back\n")
    table = DistanceTable.from_csv(path)
    assert table.at(5) == 2.5 and table.at(15) == 5.0 and table.at(25) == 3.5 and table.at(30) == 2.0
    assert table.at(-0.1) is None and table.at(30.5) is None
    # columns may come in any order
    swapped = DistanceTable.from_csv(_sidecar(tmp_path, "distance_m,time_s\n1,0\n3,2\n", "b.csv"))
    assert swapped.at(1) == 2.0


@pytest.mark.parametrize("text,message", [
    ("time,distance\n0,0\n", "line 1: the header must name the columns time_s,distance_m"),
    ("time_s,distance_m\n0,0\n1,x\n", "line 3: distance_m 'x' is not a number"),
    ("time_s,distance_m\n0,0\n1,1\n1,2\n", "line 4: time_s 1 does not increase"),
    ("time_s,distance_m\n0,0\n2,1\n1,2\n", "line 4: time_s 1 does not increase"),
    ("time_s,distance_m\n0,0\nnan,1\n", "line 3: time_s 'nan' is not a finite number"),
    ("time_s,distance_m\n0,0\n1\n", "line 3: distance_m '' is not a number"),
    ("time_s,distance_m\n", "no readings"),
])
def test_distance_sidecar_errors_name_file_and_line(tmp_path, text, message):
    path = _sidecar(tmp_path, text)
    with pytest.raises(InputError) as error:
        DistanceTable.from_csv(path)
    assert str(error.value).startswith(path) and message in str(error.value)


def test_missing_sidecar_and_length(tmp_path):
    with pytest.raises(MissingInput, match="no such distance file"):
        DistanceTable.from_csv(str(tmp_path / "none.csv"))
    assert parse_length("10:40") == (10.0, 40.0) and parse_length("-2.5:0") == (-2.5, 0.0)
    for bad in ("10", "a:b", "1:2:3", "inf:3"):
        with pytest.raises(InputError, match="START:END"):
            parse_length(bad)
    length = LinearLength(10.0, 40.0, 60.0)
    assert length.at(15.0) == 17.5 and length.at(60.0) == 40.0
    assert LinearLength(0.0, 1.0, None).at(3.0) is None


def test_planted_vs_found():
    planted = [Planted("RB", 2.0, 5.0), Planted("FO", 6.0, 9.0)]
    found = [ev.Event("RB", "continuous", 2.0, 4.5, 0.9, 3.0, 4, 6), ev.Event("RB", "point", 4.8, 5.0, 0.8, 5.0, 9, 1),
             ev.Event("OB", "point", 1.0, 2.0, 0.7, 1.0, 2, 2), ev.Event("RB", "point", 5.0, 5.5, 0.7, 5.0, 10, 2)]
    matches, false_alarms = compare.match(planted, found)
    assert [(m.code, m.found_start_s, m.found_end_s, m.events) for m in matches] == [
        ("RB", 2.0, 5.0, 2), ("FO", None, None, 0)]
    # RB 5.0-5.5 starts at the planted end (exclusive): a false alarm, like the other class's OB
    assert [(e.code, e.start_s) for e in false_alarms] == [("OB", 1.0), ("RB", 5.0)]
    text = compare.table(matches, false_alarms)
    assert "missed" in text and text.count("false alarm") == 2


def test_the_hysteresis_margin_is_relative_to_each_threshold():
    """A low calibrated threshold (0.06) with a baseline of 0.03: the event ends when the probability falls
    back (off below 0.06 x 0.8 = 0.048), and a class at threshold 0.6 keeps its own proportional band."""
    times = np.arange(8.0)
    low = np.array([0.03, 0.03, 0.09, 0.05, 0.03, 0.03, 0.03, 0.03])
    high = np.array([0.3, 0.7, 0.5, 0.47, 0.3, 0.3, 0.3, 0.3])
    config = ev.EventConfig(smooth=1, margin=0.2, merge_gap_s=0.0, point_below_s=0.0)
    found = ev.find_events(times, np.stack([low, high], 1), np.array([0.06, 0.6]), ("L", "H"), config=config)
    assert [(e.code, e.start_s, e.end_s) for e in found] == [("H", 1.0, 2.0), ("L", 2.0, 3.0)]
