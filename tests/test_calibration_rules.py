"""benchmarks/calibration_rules.py on a synthetic val/test pair: its figures against sklearn and bounds."""
import os
import subprocess
import sys

import numpy as np
from sklearn.metrics import f1_score, fbeta_score

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                      "calibration_rules.py")


def rows(text, section):
    """{row name: [numbers]} of one section of the report."""
    block = text.split(section, 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in block.splitlines()[2:]:  # a title, a header, then rows: a 26-wide name after 2 spaces
        out[line[2:28].strip()] = [float(v) for v in line[28:].split()]
    return out


def test_rules_report_on_a_synthetic_pair(tmp_path):
    done = subprocess.run([sys.executable, SCRIPT, "--synthetic", str(tmp_path), "--objective", "f1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    test = np.load(tmp_path / "test.npz")
    logits, labels, unseen, ciw = test["logits"], test["labels"], test["unseen_ids"], test["ciw"]
    zsl = rows(done.stdout, "ZSL, unseen")
    assert set(zsl) == {"sigmoid 0.5", "global rule", "zscore rule (val stats)", "zscore rule (test stats)",
                        "oracle (val labels)", "oracle (test labels)"}
    at_half = f1_score(labels[:, unseen], logits[:, unseen] >= 0, average=None, zero_division=0)
    assert abs(zsl["sigmoid 0.5"][0] - at_half.mean()) < 6e-5
    # thresholds fitted on the test labels themselves (objective f1) bound every rule's per-class F1
    assert all(zsl["oracle (test labels)"][0] >= row[0] for row in zsl.values())
    gzsl = rows(done.stdout, "GZSL, Sewer-ML")
    f2 = fbeta_score(labels, logits >= 0, beta=2, average=None, zero_division=0)
    assert abs(gzsl["sigmoid 0.5"][0] - np.sum(f2 * ciw) / ciw.sum()) < 6e-5
    assert set(gzsl) == {"sigmoid 0.5", "calibrated, zscore rule", "calibrated, global rule"}
    ece = rows(done.stdout, "ECE (15 bins)")
    probs, positive = 1 / (1 + np.exp(-logits.astype(np.float64))), labels == 1
    bins = np.minimum((probs * 15).astype(int), 14)
    want = sum(abs(positive[bins == b].sum() - probs[bins == b].sum()) for b in range(15)) / probs.size
    assert abs(ece["all"][0] - want) < 6e-5
    assert ece["all"][1] < ece["all"][0]  # the synthetic logits are far from calibrated; Platt fixes that
