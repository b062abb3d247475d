"""The JSON sidecar of an export (model shape, classes and their token ids, GR adjacency, normalisation,
calibration, provenance): where it lives and how it is read back. Plain Python, so that the torch-only
module can use it too."""
from __future__ import annotations

import json
import os

from sfr_jax.errors import InputError, MissingInput

SIDECAR_FORMAT = "sfr-jax-export/1"


def sidecar_path(checkpoint: str) -> str:
    """The sidecar that goes with an exported checkpoint: same path, extension .json."""
    return os.path.splitext(checkpoint)[0] + ".json"


def read_sidecar(path: str, layout: str | None = None) -> dict:
    """A sidecar's content; an error naming the file when it is missing, not JSON, or not ours."""
    if not os.path.isfile(path):
        raise MissingInput(f"sidecar {path} not found (`sfr-jax export` writes it next to the checkpoint)")
    try:
        with open(path, encoding="utf-8") as handle:
            side = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a JSON sidecar ({error})") from None
    if not isinstance(side, dict) or side.get("format") != SIDECAR_FORMAT:
        found = side.get("format") if isinstance(side, dict) else type(side).__name__
        raise InputError(f"{path}: format {found!r}, expected {SIDECAR_FORMAT!r} (an `sfr-jax export` sidecar)")
    if layout is not None and side.get("layout") != layout:
        raise InputError(f"{path}: layout {side.get('layout')!r}, expected {layout!r}")
    return side
