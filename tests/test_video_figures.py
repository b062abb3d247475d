"""The demo's before/after figures of an inspected video against its planted truth, on a hand-computed case."""
import csv
import json

import pytest

from sfr_jax.data.synthetic_video import Planted
from sfr_jax.demo import video_figures


def _folder(tmp_path):
    """Two classes, 12 samples every 0.5 s over 6 s (the one at 2.0 s flagged), three events."""
    codes = ["IN", "FO"]
    events = [{"class": "IN", "start_s": 1.0, "end_s": 2.5, "tier": "confident"},
              {"class": "FO", "start_s": 0.0, "end_s": 0.5, "tier": "review"},
              {"class": "FO", "start_s": 4.0, "end_s": 4.5, "tier": "review"}]
    (tmp_path / "events.json").write_text(json.dumps({"classes": codes, "duration_s": 6.0, "events": events}))
    fired = {0.0: "FO", 0.5: "FO", 1.0: "IN", 1.5: "IN", 2.5: "IN", 4.0: "FO"}
    fo = {0.0: 0.6, 0.5: 0.5, 4.0: 0.9, 4.5: 0.3}
    with open(tmp_path / "frames.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample", "time_s", "flagged", "IN", "FO", "confident", "review"])
        for i in range(12):
            t = 0.5 * i
            code = fired.get(t, "")
            writer.writerow([i, t, int(t == 2.0), 0.8 if code == "IN" else 0.05, fo.get(t, 0.1),
                             code if code == "IN" else "", code if code == "FO" else ""])
    return str(tmp_path)


def test_video_figures_hand_computed(tmp_path):
    planted = [Planted("IN", 1.0, 3.0), Planted("FO", 4.0, 5.0)]
    got = video_figures.video_figures(_folder(tmp_path), planted, 6.0, "FO")
    assert (got["found"], got["planted"], got["false_alarms"]) == (2, 2, 1)
    assert got["false_alarms_per_min"] == pytest.approx(10.0)
    # 11 frames pass the gate; normal in truth: 0, 0.5, 3, 3.5, 5, 5.5; nothing fires at 3, 3.5, 4.5, 5, 5.5:
    # precision 4/5, recall 4/6 -> F1 8/11
    assert got["frames"] == 11 and got["f1_normal"] == pytest.approx(8 / 11)
    # FO ranked 0.9 (pos), 0.6, 0.5, 0.3 (pos), then 0.1s: AP = (1/1 + 2/4) / 2
    assert got["ap"] == pytest.approx(0.75)
    assert got["tiers"] == {"confident": {"events": 1, "true": 1, "precision": 1.0},
                            "review": {"events": 2, "true": 1, "precision": 0.5}}


def test_planted_labels_end_is_exclusive():
    import numpy as np

    labels = video_figures.planted_labels([Planted("FO", 1.0, 2.0)], ["IN", "FO"], np.array([0.5, 1.0, 1.5, 2.0]))
    assert labels.tolist() == [[0, 0], [0, 1], [0, 1], [0, 0]]
