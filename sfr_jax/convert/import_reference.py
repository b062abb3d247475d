"""Trained SFR-Nets from PyTorch files: the reference's .pth, our reference-layout export with its sidecar, or
our Hugging Face layout folder, read into a LoadedModel (sfr_jax/train/imported.py turns one into a workdir).
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

import numpy as np
from flax import nnx
from safetensors.numpy import load_file

from sfr_jax.convert import export
from sfr_jax.convert.hf import hf_to_ours, read_hf_state
from sfr_jax.convert.openai import read_torch_state
from sfr_jax.convert.sidecar import read_sidecar, sidecar_path
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval import calibration_record
from sfr_jax.infer.model import LoadedModel
from sfr_jax.models.clip import CLIP, CLIPConfig
from sfr_jax.models.sfr import SFRNet
from sfr_jax.models.store import assign_params
from sfr_jax.text.classes import class_set_from_dict, load_class_set
from sfr_jax.text.tokenizer import ClipTokenizer

ADJACENCY_CHOICES = ("current", "frozen")
BARE_HINT = ("if it is a reference SFR-Net checkpoint (e.g. sewerml_best.pth), pass --bare-reference; if it is "
             "an `sfr-jax export`, put its .json sidecar beside it")


# ---------------------------------------------------------------- building an SFRNet from flat params

def build_model(clip_config, sfr_config, flat: Mapping[str, np.ndarray], class_tokens, adjacency=None, *,
                image_size: Optional[int] = None, source: str = "checkpoint"):
    """An SFRNet (eval mode) holding exactly `flat`; adjacency None with GR on gives a placeholder to refresh."""
    c = int(np.shape(class_tokens)[0])
    clip = CLIP(clip_config, sfr_config.rs, image_size=image_size, rngs=nnx.Rngs(0))
    placeholder = np.eye(c, dtype=np.float32) if sfr_config.use_gr and adjacency is None else adjacency
    model = SFRNet(clip, sfr_config, class_tokens, placeholder, rngs=nnx.Rngs(1))
    assign_params(model, flat, allow_missing=None, source=source)
    model.eval()
    return model


def frozen_adjacency(model, phrase_tokens):
    """A_hat computed with the adapters switched off (up-projections zeroed): the graph the reference trains with."""
    state = nnx.state(model.clip, nnx.Param)
    saved = {}
    for path, var in nnx.to_flat_state(state):
        if "adapter" in [str(p) for p in path] and str(path[-2]) == "up":
            saved[path] = var.get_value()
            var.set_value(var.get_value() * 0)
    try:
        return np.asarray(model.compute_adjacency(phrase_tokens))
    finally:
        for path, var in nnx.to_flat_state(state):
            if path in saved:
                var.set_value(saved[path])


def open_tokenizer(path: Optional[str]) -> ClipTokenizer:
    """OpenAI's vocabulary (default), a folder with tokenizer files, or a bpe .txt.gz merges file."""
    if not path:
        return ClipTokenizer.default()
    if os.path.isdir(path):
        return ClipTokenizer.from_pretrained(path)
    if path.endswith(".gz") and os.path.isfile(path):
        return ClipTokenizer.from_bpe_gz(path)
    raise MissingInput(f"--tokenizer {path}: expected a folder with tokenizer files or a bpe .txt.gz file")


# ---------------------------------------------------------------- PyTorch checkpoints -> LoadedModel

def _read_weights(path: str) -> dict:
    if path.endswith(".safetensors"):
        try:
            return dict(load_file(path))
        except Exception as error:  # the safetensors reader raises several types for a damaged file
            raise InputError(f"{path} is not a readable safetensors file ({type(error).__name__}: {error})") from None
    return read_torch_state(path)


def _from_sidecar(path: str, side: dict, flat, clip_config, tok) -> LoadedModel:
    sfr_config = export.sfr_config_from_dict(side["model"])
    classes = class_set_from_dict({"name": side.get("class_set", "exported"), "classes": side["classes"]},
                                  side.get("class_set", "exported"), f"{path} sidecar")
    tokens = np.asarray(side["class_tokens"], np.int32)
    adj = np.asarray(side["adjacency"], np.float32) if side.get("adjacency") is not None else None
    image_size = int(side.get("image_size", clip_config.vision.image_size))
    norm = side.get("normalization", {})
    mean, std = tuple(norm.get("mean", (0.5,) * 3)), tuple(norm.get("std", (0.5,) * 3))
    provenance = dict(side.get("provenance", {}), source=os.path.abspath(path))
    model = build_model(clip_config, sfr_config, flat, tokens, adj, image_size=image_size, source=path)
    record = side.get("calibration")
    if record is not None:
        record = calibration_record.validate_record(record, f"{path} sidecar calibration")
        calibration_record.check_record(record, step=record["step"], class_set=classes, origin=f"{path} sidecar")
    return LoadedModel(model, classes, tok, image_size, mean, std, provenance, record)


def _bare_adjacency(model, classes, tok, adjacency: str):
    phrases = tok.encode(list(classes.phrases))
    if adjacency == "current":
        return np.asarray(model.compute_adjacency(phrases))
    if adjacency == "frozen":
        return frozen_adjacency(model, phrases)
    if not os.path.isfile(adjacency):  # e.g. the matrix `ref_sfr.py adjacency` saved
        raise MissingInput(f"adjacency file {adjacency} not found")
    adj = np.load(adjacency)
    if adj.shape != (classes.num_classes,) * 2:
        raise InputError(f"{adjacency}: shape {adj.shape}, expected {(classes.num_classes,) * 2}")
    return adj


def load_checkpoint(path: str, *, tokenizer: Optional[str] = None, class_set: Optional[str] = None,
                    descriptions: Optional[str] = None, adjacency: str = "current",
                    bare_reference: bool = False) -> LoadedModel:
    """An export with its sidecar (everything from the sidecar), an HF-layout export folder, or, with
    `bare_reference`, a reference .pth without sidecar (Sewer-ML classes unless `class_set`; the GR graph
    computed as `adjacency` says). A weights file without sidecar and without `bare_reference` is refused."""
    if adjacency not in ADJACENCY_CHOICES and not str(adjacency).endswith(".npy"):
        raise InputError(f"adjacency must be one of {ADJACENCY_CHOICES} or a .npy file, got {adjacency!r}")
    tok = open_tokenizer(tokenizer)
    if os.path.isdir(path):
        side = read_sidecar(os.path.join(path, export.HF_SIDECAR), layout="hf")
        flat = {f"clip.{k}": v for k, v in hf_to_ours(read_hf_state(path)).items()}
        flat.update(export.hf_extras_to_ours(load_file(os.path.join(path, export.EXTRAS_FILE))))
        clip_config = CLIPConfig.from_hf(side["model"]["clip"])
        if not tokenizer and any(os.path.isfile(os.path.join(path, f)) for f in ("tokenizer.json", "vocab.json")):
            tok = open_tokenizer(path)
    elif os.path.isfile(path):
        meta = sidecar_path(path)
        side = read_sidecar(meta, layout="reference") if os.path.isfile(meta) else None
        if side is None and not bare_reference:
            raise MissingInput(f"{path} has no sidecar {meta}: {BARE_HINT}")
        state = _read_weights(path)
        clip_config = CLIPConfig.from_hf(side["model"]["clip"]) if side else None
        clip_config, flat = export.from_reference(state, config=clip_config, source=path)
    else:
        raise MissingInput(f"checkpoint {path}: no such file or folder")
    if side is not None:
        if descriptions or class_set:
            raise InputError(f"{path} has a sidecar that fixes the classes; use predict --classes to score others")
        return _from_sidecar(path, side, flat, clip_config, tok)

    sfr_config = export.sfr_config_from_flat(flat, clip_config)
    classes = load_class_set(class_set or "sewerml", descriptions=descriptions, check_length=True, tokenizer=tok)
    model = build_model(clip_config, sfr_config, flat, tok.encode(list(classes.descriptions)), None, source=path)
    if sfr_config.use_gr:
        model.adjacency.set_value(np.asarray(_bare_adjacency(model, classes, tok, adjacency), np.float32))
    return LoadedModel(model, classes, tok, clip_config.vision.image_size, (0.5,) * 3, (0.5,) * 3,
                       {"source": os.path.abspath(path), "adjacency": adjacency, "read_as": "bare reference"})
