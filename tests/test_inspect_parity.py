"""frames.csv of a lossless video equals `sfr-jax predict` on the same frames saved as PNG (1e-5): inspect
decodes, resizes and scores exactly the pixels predict reads. The model is a tiny random SFR-Net exported to
a .pth for predict and wrapped, in memory, as a Scorer for inspect."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from export_fixtures import random_sfr
from sfr_jax import predict
from sfr_jax.convert import export
from sfr_jax.data import synthetic_video as sv
from sfr_jax.inspection import run, sources
from sfr_jax.serve.backends import open_scorer
from sfr_jax.source import ModelSource
from sfr_jax.text.tokenizer import ClipTokenizer


@pytest.mark.slow
def test_frames_csv_of_a_lossless_video_equals_predict_on_png_frames(tmp_path, capsys):
    model, class_set = random_sfr(seed=7)
    tokenizer = ClipTokenizer.default()
    model.class_tokens.set_value(np.asarray(tokenizer.encode(list(class_set.descriptions)), np.int32))
    checkpoint, _ = export.export_reference(model, class_set, str(tmp_path / "model.pth"), tokenizer)
    spec = sv.VideoSpec(seed=4, duration_s=0.6, fps=10, size=(80, 64), draw_height=64,
                        planted=(sv.Planted("RB", 0.2, 0.5),))
    path = sv.write_video(str(tmp_path / "seg.mkv"), spec, "ffv1")
    png_dir = tmp_path / "png"
    png_dir.mkdir()
    for i in range(spec.num_frames):
        Image.fromarray(sv.render_frame(spec, i)).save(png_dir / f"{i}.png")

    out = tmp_path / "predict.json"
    assert predict.main(["--checkpoint", checkpoint, str(png_dir), "--format", "json", "--out", str(out)]) == 0
    predicted = {int(item["path"].rsplit("/", 1)[1][:-4]): item for item in json.load(open(out))["images"]}

    source = ModelSource(checkpoint=checkpoint, mode="gzsl")
    scorer, _ = open_scorer(source, batch_size=4)  # the backend `sfr-jax inspect --checkpoint` runs
    inputs, _ = sources.expand([path])
    run.inspect_videos(scorer, inputs, str(tmp_path / "out"),
                       run.InspectOptions(every_s=None, progress=False))
    with open(tmp_path / "out" / "seg" / "frames.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == spec.num_frames == len(predicted)
    assert list(json.load(open(out))["classes"]) == list(scorer.codes)
    for row in rows:
        index = int(round(float(row["time_s"]) * spec.fps))
        got = np.array([float(row[code]) for code in scorer.codes])
        np.testing.assert_allclose(got, predicted[index]["scores"], atol=1e-5, rtol=0)
