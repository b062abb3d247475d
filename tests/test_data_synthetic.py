"""Synthetic mini Sewer-ML: the real raw format, deterministic, every class visibly drawn, realistic imbalance."""
import csv

import numpy as np
from PIL import Image

from sfr_jax import verbs
from sfr_jax.data import raw, synthetic
from sfr_jax.text.classes import load_class_set


def test_real_format_and_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert verbs.run("synth", ["--out", str(a), "--num-images", "10", "--seed", "1", "--draw-size", "24"]) == 0
    synthetic.write(str(b), 10, 1, draw_size=24)
    synthetic.write(str(c), 10, 2, draw_size=24)
    with open(a / "SewerML_Train.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == raw.SEWERML_OFFICIAL_HEADER and len(rows) == 1 + 8
    assert (a / "SewerML_Val.csv").read_text().count("\n") == 1 + 2
    for row in rows[1:]:
        record = dict(zip(rows[0], row))
        codes = [int(record[code]) for code in synthetic.CODES]
        assert record["Defect"] == str(int(any(codes))) and record["ND"] == str(1 - int(any(codes)))
        image = Image.open(a / "images" / record["Filename"])
        assert image.format == "PNG" and image.mode == "RGB" and image.size in synthetic.REAL_SIZES
    names = sorted(p.name for p in (a / "images").iterdir())
    assert names == [f"{i:08d}.png" for i in range(1, 11)]
    for name in names:
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
    assert (a / "images" / names[0]).read_bytes() != (c / "images" / names[0]).read_bytes()


def test_every_class_is_drawn_visibly_and_styles_differ():
    for style in ("cctv", "web"):
        normal = np.asarray(synthetic.render(np.random.default_rng(5), {}, 96, style), np.float32)
        for code in synthetic.CODES:
            drawn = np.asarray(synthetic.render(np.random.default_rng(5), {code: 1}, 96, style), np.float32)
            changed = (np.abs(drawn - normal).max(axis=-1) > 12).mean()
            assert changed > 0.002, f"{code} ({style}) is barely visible: {changed:.4f} of the pixels changed"
    web = np.asarray(synthetic.render(np.random.default_rng(1), {}, 96, "web"), np.float32)
    cctv = np.asarray(synthetic.render(np.random.default_rng(1), {}, 96, "cctv"), np.float32)
    assert web.mean() > 1.5 * cctv.mean()


def test_label_statistics_imbalanced_with_unseen_rarest():
    labels = [synthetic.sample_labels(np.random.default_rng([0, i])) for i in range(3000)]
    matrix = np.array([[row[c] for c in synthetic.CODES] for row in labels])
    assert 0.35 < (matrix.sum(1) == 0).mean() < 0.45
    assert (matrix.sum(1) > 1).any()  # multi-label
    sewerml = load_class_set("sewerml")
    freq = dict(zip(synthetic.CODES, matrix.mean(0)))
    unseen = [sewerml.codes[i] for i in sewerml.unseen_ids]
    seen = [sewerml.codes[i] for i in sewerml.seen_ids]
    assert max(freq[c] for c in unseen) < min(freq[c] for c in seen)
    assert min(freq[c] for c in unseen) > 0.005
