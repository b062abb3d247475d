"""Resume trusts a finished video's record only with the outputs it names: a deleted frames.csv, a truncated
thumbnail or report, or a record edited into nonsense means the video is done again (before, a record alone
said "already done" and frames.csv stayed missing)."""
import json
import os

import numpy as np
import pytest

from sfr_jax.data import synthetic_video as sv
from sfr_jax.eval.decisions import Decisions
from sfr_jax.inspection import quality, run, sources


class _Firing:
    """One class that fires on every frame, so each video has an event and a thumbnail."""

    codes, image_size, batch_size = ("RB",), 16, 4

    def __init__(self):
        self.decisions = Decisions.uncalibrated(self.codes)

    def logits(self, x):
        return np.full((len(x), 1), 4.0, np.float32)


OPTIONS = run.InspectOptions(every_s=0.5, progress=False,
                             quality=quality.QualityConfig(dark=False, uniform=False, blur=False))


@pytest.fixture()
def finished(tmp_path):
    spec = sv.VideoSpec(seed=5, duration_s=1.5, fps=10, size=(32, 32), draw_height=32)
    inputs, _ = sources.expand([sv.write_video(str(tmp_path / "pipe.mp4"), spec, "h264")])
    out = tmp_path / "out"
    assert run.inspect_videos(_Firing(), inputs, str(out), OPTIONS).done == ["pipe"]
    assert run.inspect_videos(_Firing(), inputs, str(out), OPTIONS).skipped == ["pipe"]
    return inputs, out / "pipe", str(out)


def _thumbnail(folder):
    return folder / "thumbnails" / os.listdir(folder / "thumbnails")[0]


@pytest.mark.parametrize("damage", ["delete frames.csv", "delete report.html", "delete thumbnail",
                                    "truncate events.csv", "empty thumbnail", "delete thumbnails folder"])
def test_a_missing_or_altered_output_is_redone(finished, damage):
    inputs, folder, out = finished
    before = (folder / "frames.csv").read_bytes()
    verb, target = damage.split(" ", 1)
    path = _thumbnail(folder) if target == "thumbnail" else folder / target.replace(" folder", "")
    if verb == "delete" and path.is_dir():
        for name in os.listdir(path):
            os.remove(path / name)
        os.rmdir(path)
    elif verb == "delete":
        os.remove(path)
    elif verb == "truncate":
        path.write_bytes(path.read_bytes()[:10])
    else:
        path.write_bytes(b"")
    summary = run.inspect_videos(_Firing(), inputs, out, OPTIONS)
    assert summary.done == ["pipe"] and summary.skipped == []
    assert (folder / "frames.csv").read_bytes() == before and len(os.listdir(folder / "thumbnails")) == 1


@pytest.mark.parametrize("edit", [
    lambda r: r.pop("outputs"), lambda r: r.update(outputs="frames.csv"), lambda r: r.update(outputs={}),
    lambda r: r.update(outputs={"../../etc/passwd": 1}), lambda r: r.update(outputs={"frames.csv": "12"}),
    lambda r: r.update(format=1),
], ids=["no outputs", "a string", "empty", "outside the folder", "a string size", "the old format"])
def test_a_record_edited_into_nonsense_is_redone_not_a_traceback(finished, edit):
    inputs, folder, out = finished
    record = json.loads((folder / "record.json").read_text())
    edit(record)
    (folder / "record.json").write_text(json.dumps(record))
    assert run.inspect_videos(_Firing(), inputs, out, OPTIONS).done == ["pipe"]


def test_a_record_that_is_not_an_object_is_redone(finished):
    inputs, folder, out = finished
    (folder / "record.json").write_text("[1, 2]")
    assert run.inspect_videos(_Firing(), inputs, out, OPTIONS).done == ["pipe"]
