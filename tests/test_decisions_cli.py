"""Decisions through the verbs, on a tiny trained workdir: calibrate writes a record that eval, predict and
the exports use; predict's labels equal the record's thresholds applied by hand; the exported .pth (JAX
and the torch module) decides exactly as the workdir; a record of another step and an unlabelled split are
refused with clear messages."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from sfr_jax import evaluate, predict
from sfr_jax import exchange as convert_cli
from sfr_jax.convert.torch_model import SFRNetTorch
from sfr_jax.data import prepare, synthetic
from sfr_jax.eval import calibration_record, sewer_scores
from sfr_jax.eval.metrics import sigmoid
from train_fixtures import train_tiny_workdir

SPE = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    found = train_tiny_workdir(str(tmp_path_factory.mktemp("decide")), SPE)
    return dict(found, root=Path(found["root"]), workdir=Path(found["workdir"]))


@pytest.fixture(scope="module")
def calibrated(trained):
    assert evaluate.calibrate_main(["--workdir", str(trained["workdir"]), "--split", "test"]) == 0
    path = calibration_record.record_path(str(trained["workdir"]), trained["step"])
    return dict(trained, record=calibration_record.read_record(path), record_path=path)


def _images(trained):
    raw = os.path.join(os.path.dirname(trained["data_dir"]), "raw", "images")
    return sorted(os.path.join(raw, n) for n in os.listdir(raw))[:6]


def test_predict_json_carries_calibrated_labels_normal_and_prob(calibrated, tmp_path, capsys):
    out = tmp_path / "p.json"
    images = _images(calibrated)
    assert predict.main(["--workdir", str(calibrated["workdir"]), *images, "--format", "json", "--out", str(out)]) == 0
    assert "no calibration" not in capsys.readouterr().err
    result = json.loads(out.read_text())
    by_code = {c["code"]: c for c in calibrated["record"]["classes"]}
    assert result["decisions"].startswith("calibrated")
    for item in result["images"]:
        logits = np.array(item["logits"])
        want_prob = [sigmoid(by_code[c]["platt"]["a"] * z + by_code[c]["platt"]["b"]) for c, z in
                     zip(result["classes"], logits)]
        np.testing.assert_allclose([item["prob"][c] for c in result["classes"]], want_prob, rtol=1e-9)
        want = [c for c, p in zip(result["classes"], want_prob) if p >= by_code[c]["threshold"]]
        assert item["labels"] == want and item["normal"] == (not want)
        # each firing class's tier, by the record's confident thresholds (null: never confident)
        sure = {c: by_code[c]["confident_threshold"] for c in want}
        assert item["tiers"] == {c: ("confident" if sure[c] is not None and p >= sure[c] else "review")
                                 for c, p in zip(result["classes"], want_prob) if c in sure}
    assert result["confident_thresholds"] == {c: by_code[c]["confident_threshold"] for c in result["classes"]}


def test_export_carries_the_calibration_and_decides_as_the_workdir(calibrated, tmp_path):
    pth = tmp_path / "m.pth"
    assert convert_cli.export_main(["--workdir", str(calibrated["workdir"]), "--to", str(pth)]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["calibration"] == calibrated["record"]
    images = _images(calibrated)
    results = {}
    for source in (["--workdir", str(calibrated["workdir"])], ["--checkpoint", str(pth)]):
        out = tmp_path / f"{source[0][2:]}.json"
        assert predict.main([*source, *images, "--format", "json", "--out", str(out)]) == 0
        results[source[0]] = json.loads(out.read_text())["images"]
    assert [i["labels"] for i in results["--workdir"]] == [i["labels"] for i in results["--checkpoint"]]
    torch_model = SFRNetTorch.from_export(str(pth))
    import torch
    logits = torch.tensor([i["logits"] for i in results["--workdir"]], dtype=torch.float32)
    decided = torch_model.decide(logits, mode="gzsl")
    assert decided["labels"] == [i["labels"] for i in results["--workdir"]]
    assert decided["tiers"] == [i["tiers"] for i in results["--workdir"]]


def test_eval_reports_benchmark_metrics_at_05_and_calibrated_and_writes_the_csv(calibrated, capsys):
    wd = str(calibrated["workdir"])
    assert evaluate.eval_main(["--workdir", wd, "--name", "cal", "--write-scores"]) == 0
    res = json.load(open(os.path.join(wd, "eval", "cal.json")))
    g = res["gzsl"]
    assert {"F2_CIW", "F1_normal", "F2_CIW_calibrated", "F1_normal_calibrated"} <= set(g)
    csv_path = os.path.join(wd, "eval", sewer_scores.sigmoid_csv_name("test"))
    header = open(csv_path).readline().strip().split(",")
    assert header == ["Filename", *sewer_scores.BENCHMARK_CODES]


def test_a_record_of_another_step_is_refused_naming_both(calibrated, tmp_path, capsys):
    other = tmp_path / "wd"
    shutil.copytree(calibrated["workdir"], other)
    record = dict(calibrated["record"], step=99)
    calibration_record.write_record(calibration_record.record_path(str(other), calibrated["step"]), record)
    assert predict.main(["--workdir", str(other), _images(calibrated)[0]]) == 2
    err = capsys.readouterr().err
    assert "made for step 99" in err and f"the model is step {calibrated['step']}" in err
    assert "Traceback" not in err and "made for step 99" in err.strip().splitlines()[-1]  # one line says it


def test_calibrate_refuses_a_split_without_labels(trained, tmp_path, capsys):
    raw = tmp_path / "raw"
    synthetic.write(str(raw), 48, seed=3, draw_size=32, save_size="draw", normal_fraction=1.0)
    assert prepare.main(["sewerml", "--root", str(raw), "--out", str(tmp_path / "data"), "--image-size", "32",
                         "--shard-size", "16", "--workers", "1", "--no-progress"]) == 0
    assert evaluate.calibrate_main(["--workdir", str(trained["workdir"]), "--data-dir", str(tmp_path / "data"),
                                    "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "no positive label of any seen class" in err and "Traceback" not in err
    assert evaluate.calibrate_main(["--workdir", str(trained["workdir"]), "--split", "val"]) == 2
    assert "not a prepared split" in capsys.readouterr().err


def test_calibrate_refuses_a_split_too_small_to_stand_and_keeps_the_old_record(calibrated, tmp_path, capsys):
    """A 2-image split used to replace a good record silently (its trouble only inside the JSON). Now it is
    refused, naming the short classes with their positive counts (counted here from the raw CSV), the old
    record is kept byte for byte; --force writes it, with a warning."""
    import csv

    raw = tmp_path / "raw"
    synthetic.write(str(raw), 10, seed=11, draw_size=32, save_size="draw", val_fraction=0.2)
    assert prepare.main(["sewerml", "--root", str(raw), "--out", str(tmp_path / "data"), "--image-size", "32",
                         "--workers", "1", "--no-progress"]) == 0
    rows = list(csv.DictReader(open(raw / "SewerML_Val.csv")))
    assert len(rows) == 2
    seen = [c for c in calibrated["record"]["classes"] if c["seen"]]
    counts = {c["code"]: sum(int(r[c["code"]]) for r in rows) for c in seen}
    short = [code for code, n in counts.items() if n < calibration_record.MIN_POSITIVES]
    assert 2 * len(short) > len(seen)  # the planted case: most seen classes have 0 or 1 positive
    before = open(calibrated["record_path"], "rb").read()
    args = ["--workdir", str(calibrated["workdir"]), "--data-dir", str(tmp_path / "data"), "--split", "test"]
    assert evaluate.calibrate_main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    err = err.strip().splitlines()[-1]  # (the run's log may say which checkpoint it restored first)
    assert err.startswith("sfr-jax calibrate: split ") and f"fewer than 2 positives for {len(short)} of the {len(seen)} seen classes" in err, err
    assert ", ".join(f"{code} {counts[code]}" for code in short) in err and "--force" in err, err
    assert open(calibrated["record_path"], "rb").read() == before
    try:
        assert evaluate.calibrate_main(args + ["--force"]) == 0
        assert "written anyway (--force)" in capsys.readouterr().err
        assert calibration_record.read_record(calibrated["record_path"])["split"]["images"] == 2
    finally:
        with open(calibrated["record_path"], "wb") as handle:  # the module's other tests use the good one
            handle.write(before)


def test_calibrate_checks_its_output_before_the_model_load(trained, tmp_path, capsys):
    import shutil as sh

    other = tmp_path / "wd"
    sh.copytree(trained["workdir"], other, ignore=sh.ignore_patterns("calibration"))
    (other / "calibration").write_text("not a folder")
    assert evaluate.calibrate_main(["--workdir", str(other), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"sfr-jax calibrate: cannot write calibrations into {other / 'calibration'}: a file of " \
                          "that name exists", err
