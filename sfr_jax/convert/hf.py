"""Hugging Face CLIPModel <-> our parameter names (flat {dotted.name: np.ndarray}), by the table `names.HF`.

Our names are HF's with Flax leaf names: Linear/Conv `weight` -> `kernel` (transposed to [in, out] /
[kh, kw, in, out]), LayerNorm `weight` -> `scale`, Embedding `weight` -> `embedding`.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Dict, Mapping, Tuple

import numpy as np

from sfr_jax.convert.names import HF
from sfr_jax.errors import MissingInput, UnknownNames
from sfr_jax.models.clip import CLIPConfig
from sfr_jax.models.store import check_params, expected_shapes

_KINDS = {"T": "linear", "conv": "conv", "": "plain"}


def hf_name_to_ours(name: str) -> Tuple[str, str]:
    """(our name, kind: 'linear' | 'conv' | 'plain') of one HF parameter name."""
    found = HF.rule_for_theirs(name)
    if found is None:
        raise UnknownNames(f"no rule for the Hugging Face name {name!r}")
    rule, values = found
    return rule.ours.format(**values), _KINDS[rule.transform]


def hf_to_ours(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """HF CLIPModel state dict (numpy) -> our flat names, fp32. Unknown keys are an error naming them."""
    return {k: np.asarray(v, np.float32) for k, v in HF.to_ours(state).items()}


def ours_to_hf(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Inverse of hf_to_ours: our flat names -> HF CLIPModel names and layouts."""
    return HF.to_theirs(flat)


def read_hf_state(folder: str) -> Dict[str, np.ndarray]:
    """Tensors of a HF model folder: model.safetensors (read without torch), its sharded index, or pytorch_model.bin."""
    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    binary = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(single) or os.path.isfile(index):
        from safetensors.numpy import load_file
        if os.path.isfile(single):
            files = [single]
        else:
            with open(index) as f:
                files = sorted({os.path.join(folder, v) for v in json.load(f)["weight_map"].values()})
        state = {}
        for path in files:
            state.update(_safetensors_numpy(path, load_file))
        return state
    if os.path.isfile(binary):
        import torch  # only the pickle format needs torch
        sd = torch.load(binary, map_location="cpu", weights_only=True)  # a weights-only pickle runs no code
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in sd.items()}
    raise MissingInput(f"no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {folder}")


def _safetensors_numpy(path, load_file):
    try:
        return load_file(path)
    except (TypeError, ValueError) as error:  # bfloat16 has no numpy dtype: go through the raw bytes
        if "bf16" not in str(error).lower() and "bfloat16" not in str(error).lower():
            raise
        return _read_bf16_safetensors(path)


def _read_bf16_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out


def load_hf_clip(folder: str) -> Tuple[CLIPConfig, Dict[str, np.ndarray]]:
    """A HF CLIPModel folder -> (our config, our flat parameters, validated strictly against the config)."""
    config = CLIPConfig.from_hf(folder)
    state = read_hf_state(folder)
    try:
        flat = hf_to_ours(state)
    except UnknownNames as error:
        raise UnknownNames(f"{folder}: {error}") from None
    check_params(flat, expected_shapes(config), source=folder)
    return config, flat
