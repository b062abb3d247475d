"""Hugging Face CLIPModel <-> our parameter names (flat {dotted.name: np.ndarray}).

Our names are HF's with Flax leaf names: Linear/Conv `weight` -> `kernel` (transposed to [in, out] /
[kh, kw, in, out]), LayerNorm `weight` -> `scale`, Embedding `weight` -> `embedding`.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, Mapping, Tuple

import numpy as np

from sfr_jax.models.clip import CLIPConfig

_LAYER_NORM = re.compile(r"(layer_norm1|layer_norm2|pre_layrnorm|post_layernorm|final_layer_norm)\.(weight|bias)$")
_EMBEDDING = re.compile(r"(token_embedding|position_embedding)\.weight$")
_CONV = re.compile(r"patch_embedding\.weight$")
_LINEAR = re.compile(r"((?:q|k|v|out)_proj|fc1|fc2|visual_projection|text_projection|adapter\.(?:down|up))\.(weight|bias)$")
# Buffers some HF checkpoints carry; they hold no learned values.
_HF_IGNORED = re.compile(r"(vision_model|text_model)\.embeddings\.position_ids$")


def hf_name_to_ours(name: str) -> Tuple[str, str]:
    """(our name, kind) for an HF parameter name; kind says how to transform the tensor."""
    if _CONV.search(name):
        return name[: -len("weight")] + "kernel", "conv"
    if _EMBEDDING.search(name):
        return name[: -len("weight")] + "embedding", "plain"
    if _LAYER_NORM.search(name):
        return (name[: -len("weight")] + "scale", "plain") if name.endswith("weight") else (name, "plain")
    if _LINEAR.search(name):
        return (name[: -len("weight")] + "kernel", "linear") if name.endswith("weight") else (name, "plain")
    if name in ("logit_scale",) or name.endswith("embeddings.class_embedding"):
        return name, "plain"
    raise KeyError(name)


def _to_ours(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "conv":  # [out, in, kh, kw] -> [kh, kw, in, out]
        return np.ascontiguousarray(np.transpose(x, (2, 3, 1, 0)))
    if kind == "linear":  # [out, in] -> [in, out]
        return np.ascontiguousarray(x.T)
    return x


def _to_hf(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "conv":
        return np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
    if kind == "linear":
        return np.ascontiguousarray(x.T)
    return x


def hf_to_ours(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """HF CLIPModel state dict (numpy) -> our flat names. Unknown keys are an error naming them."""
    out, unknown = {}, []
    for name, value in state.items():
        if _HF_IGNORED.search(name):
            continue
        try:
            ours, kind = hf_name_to_ours(name)
        except KeyError:
            unknown.append(name)
            continue
        out[ours] = _to_ours(kind, np.asarray(value, np.float32))
    if unknown:
        raise KeyError(f"unexpected tensors in the Hugging Face CLIP state: {unknown}")
    return out


def ours_to_hf(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Inverse of hf_to_ours: our flat names -> HF CLIPModel names and layouts."""
    out = {}
    for name, value in flat.items():
        hf = re.sub(r"\.kernel$", ".weight", name)
        hf = re.sub(r"\.scale$", ".weight", hf)
        hf = re.sub(r"\.embedding$", ".weight", hf)
        ours_again, kind = hf_name_to_ours(hf)
        if ours_again != name:
            raise KeyError(f"no Hugging Face name for {name!r}")
        out[hf] = _to_hf(kind, np.asarray(value))
    return out


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
        sd = torch.load(binary, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in sd.items()}
    raise FileNotFoundError(f"no model.safetensors, model.safetensors.index.json or pytorch_model.bin in {folder}")


def _safetensors_numpy(path, load_file):
    try:
        return load_file(path)
    except (TypeError, ValueError) as error:  # bfloat16 has no numpy dtype: go through the raw bytes
        if "bf16" not in str(error).lower() and "bfloat16" not in str(error).lower():
            raise
        return _read_bf16_safetensors(path)


def _read_bf16_safetensors(path):
    import struct
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
    from sfr_jax.convert.store import check_params
    config = CLIPConfig.from_hf(folder)
    state = read_hf_state(folder)
    flat = hf_to_ours(state)
    check_params(flat, config, source=folder)
    return config, flat
