"""Raw CSV readers: header errors, bad rows as rejects, zero-shot dropping, class-set order, layouts."""
import csv
import os

import numpy as np
import pytest

from sfr_jax.data import raw
from sfr_jax.text.classes import load_class_set

SEWERML = load_class_set("sewerml")


def _official_csv(path, rows):
    """rows: list of (filename, {code: value}); other columns get 0."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(raw.SEWERML_OFFICIAL_HEADER)
        for name, labels in rows:
            writer.writerow([name] + [labels.get(col, 0) for col in raw.SEWERML_OFFICIAL_HEADER[1:]])


def test_labels_in_class_set_order_sorted_and_bad_rows_rejected(tmp_path):
    path = tmp_path / "SewerML_Train.csv"
    _official_csv(path, [
        ("b.png", {"RB": 1, "OK": 1}),
        ("a.png", {"GR": 1}),
        ("", {"RB": 1}),                 # empty file name
        ("c.png", {"FS": 2}),            # label not 0/1
        ("a.png", {"RB": 1}),            # duplicate: first row wins
        ("d.png", {"OS": 1, "RB": 1}),   # unseen label
        ("e.png", {}),                   # normal
    ])
    source = raw.SplitSource("train", str(path), str(tmp_path))
    rows = raw.read_split(source, SEWERML.codes, SEWERML.unseen_ids, drop_unseen=True)
    assert rows.filenames == ["a.png", "b.png", "e.png"]
    expected = np.zeros((3, 17), np.uint8)
    expected[0, SEWERML.codes.index("GR")] = 1
    expected[1, [SEWERML.codes.index("RB"), SEWERML.codes.index("OK")]] = 1
    np.testing.assert_array_equal(rows.labels, expected)
    assert rows.dropped_unseen == 1
    reasons = {(r.line, r.filename): r.reason for r in rows.rejects}
    assert reasons[(4, "")] == "empty file name"
    assert reasons[(5, "c.png")].startswith("label not 0/1") and "FS='2'" in reasons[(5, "c.png")]
    assert reasons[(6, "a.png")] == "duplicate file name (first on line 3)"
    assert len(rows.rejects) == 3

    kept = raw.read_split(source, SEWERML.codes, SEWERML.unseen_ids, drop_unseen=False)
    assert kept.filenames == ["a.png", "b.png", "d.png", "e.png"] and kept.dropped_unseen == 0


def test_wrong_header_names_missing_columns(tmp_path):
    path = tmp_path / "sewerml_train.csv"
    path.write_text("file,RB,OB\nx.png,1,0\n")
    with pytest.raises(ValueError) as error:
        raw.read_split(raw.SplitSource("train", str(path), str(tmp_path)), SEWERML.codes)
    message = str(error.value)
    assert str(path) in message and "filename" in message and "OS" in message and "PF" in message
    assert "RB," not in message.split("header")[0]  # present columns are not reported missing


def test_find_sources_layouts(tmp_path):
    official = tmp_path / "official"
    (official / "images").mkdir(parents=True)
    for name in ("SewerML_Train.csv", "SewerML_Val.csv"):
        (official / name).write_text("x")
    sources = raw.find_sources("sewerml", str(official))
    assert [(s.name, os.path.basename(s.csv_path)) for s in sources] == [("train", "SewerML_Train.csv"),
                                                                         ("test", "SewerML_Val.csv")]
    assert sources[0].image_dir == str(official / "images")

    sfr = tmp_path / "sfr"
    (sfr / "data").mkdir(parents=True)
    for name in ("sewerml_train.csv", "sewerml_test.csv"):
        (sfr / name).write_text("x")
    assert [s.image_dir for s in raw.find_sources("sewerml", str(sfr))] == [str(sfr / "data")] * 2

    wz = tmp_path / "wz"
    (wz / "masked").mkdir(parents=True)
    (wz / "train.csv").write_text("x")
    with pytest.raises(FileNotFoundError, match="test.csv"):
        raw.find_sources("wzpipe", str(wz))
    (wz / "test.csv").write_text("x")
    assert [s.name for s in raw.find_sources("wzpipe", str(wz))] == ["train", "test"]
    with pytest.raises(FileNotFoundError, match="no Sewer-ML annotations"):
        raw.find_sources("sewerml", str(wz))
