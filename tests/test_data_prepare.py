"""`sfr-jax prepare`: raw -> shards -> pipeline round trips (official, SFR-Net and WZ-Pipe layouts), bad input
listed instead of crashing, resumable, parallel == serial, TFDS registration."""
import csv
import io
import json
import os

import numpy as np
from PIL import Image

from sfr_jax.data import pipeline, prepare, synthetic, tfrecords
from sfr_jax.text.classes import load_class_set
from data_fixtures import stored_records

SEWERML = load_class_set("sewerml")
WZPIPE = load_class_set("wzpipe")


def _prepare(dataset, root, out, *extra):
    return prepare.main([dataset, "--root", str(root), "--out", str(out), "--workers", "1", "--image-size", "32",
                         "--shard-size", "4", "--no-progress", *extra])


def _csv_labels(path, codes):
    """{filename: labels in `codes` order}, read independently of sfr_jax.data.raw."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        name = next(key for key in reader.fieldnames if key.lower() == "filename")
        return {row[name]: [int(row[code]) for code in codes] for row in reader}


def _check_round_trip(out, csv_paths, class_set):
    for split, csv_path in csv_paths.items():
        expected = _csv_labels(csv_path, class_set.codes)
        if split == "train":  # zero-shot protocol: no training image carries an unseen label
            unseen = list(class_set.unseen_ids)
            dropped = {name for name, labels in expected.items() if any(labels[i] for i in unseen)}
            assert dropped, "the test data should contain unseen-labelled training rows"
            expected = {name: labels for name, labels in expected.items() if name not in dropped}
            assert tfrecords.read_info(os.path.join(out, split))["dropped_unseen"] == len(dropped)
        stored = stored_records(os.path.join(out, split))
        assert {name: labels for name, (labels, _) in stored.items()} == expected
        # through the eval pipeline too: every file once, right labels (global batch 8 does not divide)
        seen = {}
        for batch in pipeline.eval_batches(os.path.join(out, split), global_batch=8, with_filenames=True):
            for name, labels, keep in zip(batch["filename"], batch["labels"], batch["mask"]):
                if keep:
                    assert name.decode() not in seen
                    seen[name.decode()] = labels.astype(int).tolist()
        assert seen == expected
        info = tfrecords.read_info(os.path.join(out, split))
        assert list(stored) == sorted(expected), "shards must hold the rows sorted by file name"
        assert info["num_examples"] == len(expected)


def test_round_trip_official_layout_png_pixels(tmp_path):
    raw = tmp_path / "raw"
    synthetic.write(str(raw), 40, seed=3, layout="official", draw_size=32, save_size="real")
    assert _prepare("sewerml", raw, tmp_path / "out", "--format", "png") == 0
    _check_round_trip(str(tmp_path / "out"), {"train": raw / "SewerML_Train.csv", "test": raw / "SewerML_Val.csv"},
                      SEWERML)
    # stored pixels = the reference's resize of the source, exactly (PNG is lossless): PIL bicubic for
    # training (T.Resize(interpolation=3)), PIL bilinear for evaluation (T.Resize's default)
    for split, resample, label in (("train", Image.BICUBIC, "bicubic"), ("test", Image.BILINEAR, "bilinear")):
        stored = stored_records(str(tmp_path / "out" / split))
        assert tfrecords.read_info(str(tmp_path / "out" / split))["resize"] == f"PIL {label}"
        for name, (_, encoded) in list(stored.items())[:3]:
            source = Image.open(raw / "images" / name).convert("RGB")
            expected = np.asarray(source.resize((32, 32), resample))
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encoded))), expected)
            other = Image.BILINEAR if resample == Image.BICUBIC else Image.BICUBIC
            assert not np.array_equal(np.asarray(source.resize((32, 32), other)), expected)


def test_round_trip_sfr_layout(tmp_path):
    raw = tmp_path / "raw"
    synthetic.write(str(raw), 30, seed=4, layout="sfr", draw_size=24, save_size="draw")
    assert _prepare("sewerml", raw, tmp_path / "out") == 0
    _check_round_trip(str(tmp_path / "out"), {"train": raw / "sewerml_train.csv", "test": raw / "sewerml_test.csv"},
                      SEWERML)


def test_round_trip_wzpipe(tmp_path):
    raw = tmp_path / "raw"
    (raw / "masked").mkdir(parents=True)
    rng = np.random.default_rng(0)
    shuffled_codes = list(WZPIPE.codes)[::-1]  # column order differs from the class-set order
    for split, count in (("train", 14), ("test", 6)):
        with open(raw / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename"] + shuffled_codes)
            for i in range(count):
                name = f"{split}_{i:03d}.jpg"
                image, _, _ = synthetic.make_frame(9, i + 100 * (split == "test"), draw_size=24, save_size="draw")
                image.save(raw / "masked" / name, format="JPEG")
                labels = (rng.uniform(size=17) < 0.15).astype(int)
                if split == "train" and i < 2:
                    labels[WZPIPE.codes.index("CQ")] = 1  # an unseen WZ-Pipe class
                writer.writerow([name] + [labels[WZPIPE.codes.index(code)] for code in shuffled_codes])
    assert _prepare("wzpipe", raw, tmp_path / "out") == 0
    _check_round_trip(str(tmp_path / "out"), {"train": raw / "train.csv", "test": raw / "test.csv"}, WZPIPE)
    assert tfrecords.read_info(str(tmp_path / "out" / "train"))["codes"] == list(WZPIPE.codes)


def _bad_input(tmp_path):
    raw = tmp_path / "raw"
    synthetic.write(str(raw), 16, seed=5, layout="official", draw_size=24, save_size="draw", val_fraction=0.25)
    with open(raw / "SewerML_Train.csv") as handle:
        lines = handle.read().splitlines()
    header, rows = lines[0], lines[1:]
    (raw / "images" / "00000002.png").write_bytes((raw / "images" / "00000002.png").read_bytes()[:60])  # corrupt
    os.remove(raw / "images" / "00000003.png")  # missing
    extra = [
        ",0,0" + ",0" * 17 + ",1,0",                        # empty file name
        "zz_bad_label.png,0,0,2" + ",0" * 16 + ",0,1",       # RB = 2
        rows[0],                                             # duplicate of the first row
    ]
    (raw / "SewerML_Train.csv").write_text("\n".join([header] + rows + extra) + "\n")
    return raw, len(rows)


def test_bad_input_is_counted_and_listed(tmp_path):
    raw, num_rows = _bad_input(tmp_path)
    assert _prepare("sewerml", raw, tmp_path / "out") == 0
    split = tmp_path / "out" / "train"
    with open(split / "rejects.csv", newline="") as handle:
        rejects = list(csv.DictReader(handle))
    reasons = {row["filename"]: row["reason"] for row in rejects}
    assert reasons["00000002.png"].startswith("unreadable image")
    assert reasons["00000003.png"] == "missing image"
    assert reasons[""] == "empty file name"
    assert reasons["zz_bad_label.png"].startswith("label not 0/1")
    assert reasons["00000001.png"].startswith("duplicate file name")
    assert len(rejects) == 5
    info = tfrecords.read_info(str(split))
    assert info["num_rejected"] == 5
    assert info["rejected_by_reason"] == {"duplicate file name (first on line 2)": 1, "empty file name": 1,
                                          "label not 0/1": 1, "missing image": 1, "unreadable image": 1}
    expected = _csv_labels(raw / "SewerML_Train.csv", SEWERML.codes)
    good = {n for n, l in expected.items() if n not in ("", "zz_bad_label.png", "00000002.png", "00000003.png")
            and not any(l[i] for i in SEWERML.unseen_ids)}
    assert set(stored_records(str(split))) == good
    assert info["num_examples"] + info["dropped_unseen"] + 2 == num_rows  # 2 = corrupt + missing


def test_wrong_header_is_an_error_naming_columns(tmp_path, capsys):
    raw = tmp_path / "raw"
    synthetic.write(str(raw), 6, seed=6, layout="official", draw_size=24, save_size="draw")
    text = (raw / "SewerML_Val.csv").read_text().replace(",OS,", ",XX,", 1)
    (raw / "SewerML_Val.csv").write_text(text)
    assert _prepare("sewerml", raw, tmp_path / "out") == 2
    assert "missing column(s) OS" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out" / "test" / tfrecords.INFO_FILE)


def test_parallel_equals_serial_and_resume_skips_finished_shards(tmp_path):
    raw = tmp_path / "raw"
    synthetic.write(str(raw), 36, seed=7, layout="official", draw_size=24, save_size="draw", val_fraction=0.25)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert _prepare("sewerml", raw, serial) == 0
    assert _prepare("sewerml", raw, parallel, "--workers", "2") == 0  # two spawned worker processes
    for split in ("train", "test"):
        info = tfrecords.read_info(str(serial / split))
        assert info["shards"] == tfrecords.read_info(str(parallel / split))["shards"]
        for name in info["shards"]:
            assert (serial / split / name).read_bytes() == (parallel / split / name).read_bytes()

    split = parallel / "train"
    info = tfrecords.read_info(str(split))
    shards = info["shards"]
    assert len(shards) >= 4
    before = {name: os.stat(split / name).st_mtime_ns for name in shards}
    # simulate a crash: one shard never renamed (a temporary left behind), the split never finished
    os.replace(split / shards[1], split / (shards[1] + ".tmp999"))
    os.remove(split / tfrecords.INFO_FILE)
    assert _prepare("sewerml", raw, parallel) == 0
    after = {name: os.stat(split / name).st_mtime_ns for name in shards}
    assert [name for name in shards if after[name] != before[name]] == [shards[1]]
    assert (split / shards[1]).read_bytes() == (serial / "train" / shards[1]).read_bytes()
    assert tfrecords.read_info(str(split))["shard_lengths"] == info["shard_lengths"]
    # a folder written before --resize existed (bicubic, no such key in its options) resumes
    options_path = split / prepare.PROGRESS_DIR / "options.json"
    options = json.loads(options_path.read_text())
    assert options.pop("resize") == "bicubic"
    options_path.write_text(json.dumps(options))
    assert _prepare("sewerml", raw, parallel) == 0
    # other options, or a changed CSV, into the same folder are refused
    assert _prepare("sewerml", raw, parallel, "--resize", "bilinear") == 2
    assert _prepare("sewerml", raw, parallel, "--image-size", "16") == 2
    text = (raw / "SewerML_Val.csv").read_text().splitlines()
    (raw / "SewerML_Val.csv").write_text("\n".join(text[:-1]) + "\n")
    assert _prepare("sewerml", raw, parallel) == 2


def test_tfds_reads_the_split(tmp_path):
    import tensorflow_datasets as tfds

    raw = tmp_path / "raw"
    synthetic.write(str(raw), 12, seed=8, layout="official", draw_size=24, save_size="draw", val_fraction=0.5)
    assert _prepare("sewerml", raw, tmp_path / "out") == 0
    builder = tfds.builder_from_directory(str(tmp_path / "out" / "test"))
    assert builder.info.splits["test"].num_examples == 6
    names = sorted(ex["filename"].decode() for ex in tfds.as_numpy(builder.as_dataset(split="test")))
    assert names == sorted(_csv_labels(raw / "SewerML_Val.csv", SEWERML.codes))
    with open(tmp_path / "out" / "test" / tfrecords.INFO_FILE) as handle:
        assert json.load(handle)["image_size"] == 32


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes_to_identical_shards(tmp_path):
    """A real Ctrl-C (SIGINT to the process group) while spawned workers write shards: one line, exit 130,
    nothing that looks complete; the same command then finishes, with no stale temporaries, and its shards
    equal those of an uninterrupted run byte for byte."""
    import signal
    import subprocess
    import sys
    import time

    raw = tmp_path / "raw"
    synthetic.write(str(raw), 160, seed=5, draw_size=96, save_size="real")
    args = ["sewerml", "--root", str(raw), "--image-size", "64", "--shard-size", "4", "--workers", "2",
            "--no-progress"]
    assert prepare.main(args + ["--out", str(tmp_path / "whole")]) == 0
    out = tmp_path / "cut"
    cmd = [sys.executable, "-m", "sfr_jax.main", "prepare", *args, "--out", str(out)]
    # A process started with SIGINT ignored keeps ignoring it (POSIX; pytest-xdist's workers run so), while an
    # interactive shell starts commands with the default disposition: give the child that one.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    receipts = out / "train" / prepare.PROGRESS_DIR
    end = time.time() + 120
    while time.time() < end and not (receipts.is_dir() and len(os.listdir(receipts)) >= 3):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: every process of the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == \
        "sfr-jax prepare: interrupted; run the same command to resume"
    assert not (out / "train" / tfrecords.INFO_FILE).exists()  # the split is not marked complete
    assert prepare.main(args + ["--out", str(out)]) == 0
    for split in ("train", "test"):
        names = sorted(os.listdir(out / split))
        assert not [n for n in names if ".tmp" in n], names
        whole = sorted(n for n in os.listdir(tmp_path / "whole" / split) if n.endswith(tuple("0123456789")))
        for name in whole:
            assert (out / split / name).read_bytes() == (tmp_path / "whole" / split / name).read_bytes(), name
