"""The JSON sidecar of an export (model shape, classes and their token ids, GR adjacency, normalisation,
calibration, provenance): where it lives and how it is read back. Plain Python, so that the torch-only
module can use it too."""
from __future__ import annotations

import os

from sfr_jax import records
from sfr_jax.errors import InputError

SIDECAR_FORMAT = "sfr-jax-export/1"


def sidecar_path(checkpoint: str) -> str:
    """The sidecar that goes with an exported checkpoint: same path, extension .json."""
    return os.path.splitext(checkpoint)[0] + ".json"


def read_sidecar(path: str, layout: str | None = None) -> dict:
    """A sidecar's content, checked against records.EXPORT_SIDECAR; one line naming the file (and the key)
    when it is missing, not JSON, not ours or damaged."""
    side = records.read(path, records.EXPORT_SIDECAR, "`sfr-jax export` writes it next to the checkpoint",
                        fmt=SIDECAR_FORMAT, what="sidecar")
    if layout is not None and side.get("layout") != layout:
        raise InputError(f"{path}: layout {side.get('layout')!r}, expected {layout!r}")
    return side
