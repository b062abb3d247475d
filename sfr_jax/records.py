"""The one validator of every JSON record sfr-jax writes and reads back (export sidecars, hf sfr.json, ONNX
sidecars, calibration records): a small schema per record type, and `read` / `check` that turn any misfit
into ONE user error naming the file and the key (`classes[3].threshold`), never a KeyError later.

A schema is plain data:
    str, int, bool, dict, list  that JSON type (bool is not an int here)
    NUMBER                      a finite int or float (not bool): JSON has no inf/nan, a hand edit may
    {"key": s, "key?": s}       an object with these keys ('?': optional); other keys are allowed
    [s]                         a list whose every item matches s
    (s1, s2, ...)               any one of them; None in it allows null
"""
from __future__ import annotations

import json
import math
import os

from sfr_jax.errors import InputError, MissingInput

NUMBER = "number"

CLASS = {"code": str, "phrase": str, "description": str, "seen": bool}
PLATT = {"a": NUMBER, "b": NUMBER}

# `sfr-jax export` (reference layout FILE.json, hf layout sfr.json): what import_reference and torch_model read.
EXPORT_SIDECAR = {
    "format": str, "layout": str,
    "model": {"clip": {"vision_config": dict, "text_config": dict}, "rs": dict, "sfr": dict},
    "image_size?": int,
    "normalization?": {"mean?": [NUMBER], "std?": [NUMBER]},
    "class_set?": str,
    "classes": [CLASS],
    "class_tokens": [[int]],
    "adjacency?": (None, [[NUMBER]]),
    "calibration?": (None, dict),  # a calibration record, checked with CALIBRATION by its reader
    "provenance?": dict,
}

# `sfr-jax export --format onnx` FILE.json: what sfr_jax.serve.onnx reads.
ONNX_SIDECAR = {
    "format": str, "export_id": str, "image_size": int, "mode?": str, "class_set?": str,
    "classes": [dict(CLASS, threshold=NUMBER, scale=NUMBER, shift=NUMBER, **{"confident_threshold?": (NUMBER, None)})],
    "decisions?": {"source?": str},
}

# `sfr-jax calibrate` <workdir>/calibration/<step>.json: what decisions read.
CALIBRATION = {
    "format": str, "step": int, "objective": str, "unseen_rule": str,
    "class_set": {"name": str, "digest?": str},
    "split": {"name": str, "digest?": str, "images?": int},
    "rules": {"global": {"logit_threshold": NUMBER, "platt": PLATT},
              "zscore": {"z_threshold": NUMBER, "platt": PLATT}},
    "classes": [{"code": str, "seen?": bool, "threshold": NUMBER, "platt": PLATT,
                 "confident_threshold?": (NUMBER, None)}],  # the confident tier (null: none reaches it)
    "confident_precision?": NUMBER,
}
# ... and, in a record with the tiers (one that has confident_precision), their thresholds everywhere.
CALIBRATION_TIERS = {
    "confident_precision": NUMBER,
    "rules": {"global": {"confident_logit_threshold": (NUMBER, None)}, "zscore": {"confident_z_threshold": (NUMBER, None)}},
    "classes": [{"confident_threshold": (NUMBER, None)}],
}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object", list: "a list",
               NUMBER: "a finite number", None: "null"}


def _describe(schema) -> str:
    if isinstance(schema, tuple):
        return " or ".join(_describe(s) for s in schema)
    if isinstance(schema, dict):
        return "an object"
    if isinstance(schema, list):
        return "a list"
    return _TYPE_NAMES[schema]


def _fits_type(value, schema) -> bool:
    if schema is None:
        return value is None
    if schema is NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if schema is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, schema)


def problem(value, schema, where: str = "") -> str | None:
    """'KEY: what is wrong' for the first misfit of `value` to `schema` (depth first), None when it fits."""
    if isinstance(schema, tuple):
        for option in schema:
            if problem(value, option, where) is None:
                return None
        return f"{where or 'the record'} is not {_describe(schema)}"
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{where or 'the record'} is not an object"
        for key, sub in schema.items():
            name, optional = (key[:-1], True) if key.endswith("?") else (key, False)
            path = f"{where}.{name}" if where else name
            if name not in value:
                if optional:
                    continue
                return f"{path} is missing"
            found = problem(value[name], sub, path)
            if found:
                return found
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{where or 'the record'} is not a list"
        for i, item in enumerate(value):
            found = problem(item, schema[0], f"{where}[{i}]")
            if found:
                return found
        return None
    if not _fits_type(value, schema):
        return f"{where or 'the record'} is {json.dumps(value)[:40]}, not {_describe(schema)}"
    return None


def check(value, schema, origin: str, hint: str = "") -> dict:
    """`value` itself when it fits `schema`; else an InputError '<origin>: <key> ...; <hint>'."""
    found = problem(value, schema)
    if found:
        raise InputError(f"{origin}: {found}" + (f"; {hint}" if hint else ""))
    return value


def read(path: str, schema, hint: str = "", *, fmt: str | None = None, what: str = "record") -> dict:
    """The JSON object in `path`, checked against `schema` (and its "format" against `fmt`); one-line
    errors naming the file: missing (MissingInput), not JSON, another format, or the first key that misfits."""
    if not os.path.isfile(path):
        raise MissingInput(f"{what} {path} not found" + (f"; {hint}" if hint else ""))
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path}: not a readable {what} (JSON: {' '.join(str(error).split())})"
                         + (f"; {hint}" if hint else "")) from None
    if fmt is not None:
        found = value.get("format") if isinstance(value, dict) else type(value).__name__
        if found != fmt:
            raise InputError(f"{path}: format {found!r}, expected {fmt!r}" + (f"; {hint}" if hint else ""))
    return check(value, schema, path, hint)
