"""Side files that do not fit, said per video (record, summary.csv, report settings, stderr), and the cheap
checks that come before the model's load. The sidecars are written here with hand-picked times: a table
wholly after the video, one covering half of it, a folder lacking one video's CSV."""
import csv
import json
import os
import re
import shutil

import numpy as np
import pytest

from sfr_jax import cli
from sfr_jax.data import synthetic_video as sv
from sfr_jax.eval.decisions import Decisions
from sfr_jax.inspection import cli as inspect_cli

SPEC = sv.VideoSpec(seed=7, duration_s=4.0, fps=10, size=(32, 32), draw_height=32)  # samples at 0, 1, 2, 3 s


class _Stub:
    codes, image_size, batch_size = ("RB",), 16, 4

    def __init__(self):
        self.decisions = Decisions.uncalibrated(self.codes)

    def logits(self, x):
        return np.full((len(x), 1), -3.0, np.float32)


@pytest.fixture()
def videos(tmp_path, monkeypatch):
    folder = tmp_path / "videos"
    first = sv.write_video(str(folder / "north.mp4"), SPEC, "h264")
    shutil.copy(first, folder / "south.mp4")
    opened = []
    monkeypatch.setattr(inspect_cli, "open_scorer", lambda *a, **k: opened.append(1) or (_Stub(), None))
    return dict(folder=folder, north=first, south=str(folder / "south.mp4"), opened=opened, tmp=tmp_path)


def _sidecar(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("time_s,distance_m\n" + "".join(f"{t},{d}\n" for t, d in rows))
    return str(path)


def _inspect(argv, capsys):
    code = cli.run("sfr-jax inspect", inspect_cli.main, argv + ["--no-progress", "--every", "1"])
    return code, capsys.readouterr().err


def _summary(out):
    with open(os.path.join(out, "summary.csv"), newline="") as handle:
        return {row["video"]: row for row in csv.DictReader(handle)}


def _frame_distances(out, name):
    with open(os.path.join(out, name, "frames.csv"), newline="") as handle:
        return [row["distance_m"] for row in csv.DictReader(handle)]


def test_a_table_after_the_video_gives_no_distances_and_says_so(videos, capsys):
    sidecar = _sidecar(videos["tmp"] / "late.csv", [(100, 5.0), (200, 9.0)])
    out = str(videos["tmp"] / "out")
    code, err = _inspect(["--checkpoint", "m.pth", videos["north"], "--out", out, "--distance", sidecar], capsys)
    assert code == 0
    assert "north.mp4: no distances: " in err and "late.csv covers 100-200 s, the video's samples 0-3 s" in err
    row = _summary(out)["north"]
    assert row["distance"].startswith("none (no distances:")
    assert _frame_distances(out, "north") == ["", "", "", ""]
    settings = json.load(open(os.path.join(out, "north", "events.json")))["settings"]
    assert settings["distance"].startswith("none") and "late.csv covers" in settings["distance"]


def test_a_table_covering_half_the_video_is_used_and_the_gap_said(videos, capsys):
    sidecar = _sidecar(videos["tmp"] / "half.csv", [(0, 10.0), (1.5, 13.0)])
    out = str(videos["tmp"] / "out")
    code, err = _inspect(["--checkpoint", "m.pth", videos["north"], "--out", out, "--distance", sidecar], capsys)
    assert code == 0 and "distances for 2 of 4 samples only" in err
    assert _frame_distances(out, "north") == ["10.000", "12.000", "", ""]  # 10 + 3 * t / 1.5, by hand
    assert _summary(out)["north"]["distance"].startswith(sidecar)


def test_a_folder_without_one_video_csv_says_which(videos, capsys):
    sidecars = videos["tmp"] / "sidecars"
    _sidecar(sidecars / "south.csv", [(0, 0.0), (4, 8.0)])
    out = str(videos["tmp"] / "out")
    code, err = _inspect(["--checkpoint", "m.pth", str(videos["folder"]), "--out", out, "--distance",
                          str(sidecars)], capsys)
    assert code == 0
    assert f"north.mp4: no distances: the --distance folder {sidecars} has no north.csv" in err
    assert "south.mp4" not in err
    rows = _summary(out)
    assert rows["north"]["distance"].startswith("none (no distances") and \
        rows["south"]["distance"] == str(sidecars / "south.csv")
    assert _frame_distances(out, "south") == ["0.000", "2.000", "4.000", "6.000"]


@pytest.mark.parametrize("case", ["malformed sidecar", "sidecar missing", "--out is a file", "bad class code",
                                  "one sidecar for two videos", "sidecar folder with a bad CSV"])
def test_cheap_checks_come_before_the_model(videos, capsys, case):
    tmp = videos["tmp"]
    argv = ["--checkpoint", "m.pth", videos["north"], "--out", str(tmp / "out")]
    if case == "malformed sidecar":
        bad = tmp / "bad.csv"
        bad.write_text("time_s,distance_m\n0,1\n1,x\n")
        argv += ["--distance", str(bad)]
        want = "bad.csv: line 3: distance_m 'x' is not a number"
    elif case == "sidecar missing":
        argv += ["--distance", str(tmp / "none.csv")]
        want = "none.csv: no such distance file"
    elif case == "--out is a file":
        (tmp / "file").write_text("x")
        argv[-1] = str(tmp / "file")
        want = "--out " + str(tmp / "file") + " is a file"
    elif case == "bad class code":
        (tmp / "c.csv").write_text("code,phrase,description,seen\n../x,a,a pipe,false\n")
        argv += ["--classes", str(tmp / "c.csv")]
        want = "invalid class file: .*c.csv: line 2: code '../x' is not allowed"
    elif case == "one sidecar for two videos":
        argv = ["--checkpoint", "m.pth", str(videos["folder"]), "--out", str(tmp / "out"), "--distance",
                _sidecar(tmp / "one.csv", [(0, 1)])]
        want = "one sidecar file fits one video, and 2 are given"
    else:
        _sidecar(tmp / "side" / "north.csv", [(1, 1), (0, 2)])
        argv += ["--distance", str(tmp / "side")]
        want = "north.csv: line 3: time_s 0 does not increase"
    code, err = _inspect(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(want, lines[0]), lines[0]
    assert videos["opened"] == []  # the model was never opened
