"""The one validator of the JSON records sfr-jax reads back (sfr_jax/records.py): each planted defect is
named by file and key, in one line; a record as written passes. Expected keys are written by hand."""
import copy
import json

import pytest

from sfr_jax import records
from sfr_jax.errors import InputError, MissingInput

CLASS = {"code": "RB", "phrase": "crack", "description": "a crack", "seen": True}
ONNX = {"format": "sfr-jax-onnx/1", "export_id": "ab12", "image_size": 32, "mode": "gzsl", "class_set": "x",
        "classes": [dict(CLASS, threshold=0.5, scale=1.0, shift=0.0), dict(CLASS, code="OB", threshold=0.25,
                                                                           scale=2, shift=-1.5)],
        "decisions": {"source": "uncalibrated"}}
PLATT = {"a": 1.0, "b": 0.0}
CALIBRATION = {"format": "sfr-jax-calibration/1", "step": 3, "objective": "f2", "unseen_rule": "zscore",
               "class_set": {"name": "s", "digest": "sha256:0"}, "split": {"name": "val", "images": 9},
               "rules": {"global": {"logit_threshold": -0.5, "platt": dict(PLATT)},
                         "zscore": {"z_threshold": 1.2, "platt": dict(PLATT)}},
               "classes": [{"code": "RB", "seen": True, "threshold": 0.3, "platt": PLATT}]}
EXPORT = {"format": "sfr-jax-export/1", "layout": "reference",
          "model": {"clip": {"vision_config": {}, "text_config": {}}, "rs": {}, "sfr": {}},
          "image_size": 32, "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}, "classes": [CLASS],
          "class_tokens": [[49406, 320, 49407]], "adjacency": None, "calibration": None}


def _edit(record, path, value):
    """A deep copy of `record` with the key at `path` (a list of keys/indices) set to `value`, or deleted
    when value is `del`."""
    out = copy.deepcopy(record)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is del_:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


del_ = object()

PLANTED = [
    (ONNX, records.ONNX_SIDECAR, ["classes", 1, "threshold"], "0.25", 'classes[1].threshold is "0.25", not a finite number'),
    (ONNX, records.ONNX_SIDECAR, ["classes"], del_, "classes is missing"),
    (ONNX, records.ONNX_SIDECAR, ["classes"], {"RB": 1}, "classes is not a list"),
    (ONNX, records.ONNX_SIDECAR, ["classes", 0, "code"], 7, "classes[0].code is 7, not a string"),
    (ONNX, records.ONNX_SIDECAR, ["classes", 0, "seen"], 1, "classes[0].seen is 1, not true or false"),
    (ONNX, records.ONNX_SIDECAR, ["image_size"], 32.0, "image_size is 32.0, not an integer"),
    (ONNX, records.ONNX_SIDECAR, ["image_size"], True, "image_size is true, not an integer"),
    (ONNX, records.ONNX_SIDECAR, ["decisions"], "calibrated", "decisions is not an object"),
    (CALIBRATION, records.CALIBRATION, ["rules", "zscore", "platt", "b"], float("nan"),
     "rules.zscore.platt.b is NaN, not a finite number"),
    (CALIBRATION, records.CALIBRATION, ["classes", 0, "platt"], del_, "classes[0].platt is missing"),
    (CALIBRATION, records.CALIBRATION, ["split", "name"], None, "split.name is null, not a string"),
    (EXPORT, records.EXPORT_SIDECAR, ["class_tokens", 0, 2], 1.5, "class_tokens[0][2] is 1.5, not an integer"),
    (EXPORT, records.EXPORT_SIDECAR, ["adjacency"], [[1, "x"]], "adjacency is not null or a list"),
    (EXPORT, records.EXPORT_SIDECAR, ["model", "clip", "text_config"], del_, "model.clip.text_config is missing"),
    (EXPORT, records.EXPORT_SIDECAR, ["normalization", "std", 1], float("inf"),
     "normalization.std[1] is Infinity, not a finite number"),
]


@pytest.mark.parametrize("record, schema, path, value, message", PLANTED)
def test_a_planted_defect_is_named_by_file_and_key(record, schema, path, value, message, tmp_path):
    file = tmp_path / "record.json"
    file.write_text(json.dumps(_edit(record, path, value)))  # json writes nan/inf as NaN/Infinity, as a hand edit may
    with pytest.raises(InputError) as caught:
        records.read(str(file), schema, "export it again")
    assert str(caught.value) == f"{file}: {message}; export it again"


@pytest.mark.parametrize("record, schema", [(ONNX, records.ONNX_SIDECAR), (CALIBRATION, records.CALIBRATION),
                                            (EXPORT, records.EXPORT_SIDECAR)])
def test_a_record_as_written_passes_with_optional_keys_absent(record, schema, tmp_path):
    file = tmp_path / "ok.json"
    file.write_text(json.dumps(record))
    assert records.read(str(file), schema) == record
    optional = {k[:-1] for k in schema if k.endswith("?")}
    assert records.check({k: v for k, v in record.items() if k not in optional}, schema, "r")


def test_unreadable_missing_and_other_format(tmp_path):
    file = tmp_path / "r.json"
    with pytest.raises(MissingInput, match="sidecar .*r.json not found"):
        records.read(str(file), {}, what="sidecar")
    file.write_text('{"format": "sfr-jax-onnx/1",')
    with pytest.raises(InputError, match=r"r.json: not a readable record \(JSON: "):
        records.read(str(file), {})
    file.write_text('["a list"]')
    with pytest.raises(InputError, match=r"r.json: format 'list', expected 'sfr-jax-onnx/1'"):
        records.read(str(file), {}, fmt="sfr-jax-onnx/1")
