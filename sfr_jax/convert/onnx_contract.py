"""What an ONNX export promises its users: graph input/output names, the sidecar format and where it lives,
and how a class file is read against it. Plain Python, so that running an export (sfr_jax.serve.onnx) needs
neither JAX nor torch."""
from __future__ import annotations

import os

from sfr_jax.errors import InputError, MissingInput
from sfr_jax.text.classes import ClassSetError, load_class_set

OPSET = 18
SIDECAR_FORMAT = "sfr-jax-onnx/1"
INPUT = "images"
OUTPUTS = ("logits", "probabilities")
MAPS = "maps"  # the optional third output (export --heatmaps): MEF's patch affinities [batch, c, g, g]
META_FORMAT, META_ID, META_CODES = "sfr_jax.format", "sfr_jax.export_id", "sfr_jax.codes"


def sidecar_path(onnx_path: str) -> str:
    """The sidecar of an ONNX export: same path, extension .json."""
    return os.path.splitext(onnx_path)[0] + ".json"


def read_class_file(path: str, tokenizer=None):
    """A user's class file (.yaml/.csv), its problems as InputError / MissingInput; prompt lengths are checked
    when a tokenizer is given."""
    if not os.path.isfile(path):
        raise MissingInput(f"--classes {path}: no such file")
    try:
        return load_class_set(path, check_length=tokenizer is not None, tokenizer=tokenizer)
    except ClassSetError as error:
        raise InputError(f"--classes {path}: {error}") from None
