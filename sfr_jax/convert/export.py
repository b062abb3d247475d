"""Our SFR-Net -> PyTorch: the reference layout (one state_dict the reference SFR-Net loads with strict=True),
the Hugging Face layout (a CLIPModel folder + the adapters, head and GCN in one safetensors file), and the JSON
sidecar both carry (classes, their token ids, adjacency, normalisation, image size, config, provenance).

Reference layout keys: `clip_model.*` in OpenAI naming (fused `attn.in_proj_weight`; adapted blocks as
`resblocks.N.original_block.*` + `resblocks.N.adapter.{down,up}_project.*`), `mlp.{i}.*` (MEF head, the last
index is the output Linear), `gcn_corrector.gc{1,2}.weight`.

Hugging Face layout folder (`--to DIR`):
    config.json, model.safetensors   the frozen CLIP as transformers.CLIPModel (no adapters)
    sfr_extras.safetensors           PyTorch layouts ([out, in] weights) under these names:
        {vision_model|text_model}.encoder.layers.N.adapter.{down,up}.{weight,bias}
        head.blocks.I.{layer_norm,fc1,fc2}.{weight,bias}, head.out.{weight,bias}, gcn.gc{1,2}.weight ([in, out])
    sfr.json (the sidecar), classes.yaml, tokenizer files
"""
from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
from safetensors.numpy import save_file as save_numpy

import sfr_jax
from sfr_jax.convert import names
from sfr_jax.convert.hf import ours_to_hf
from sfr_jax.convert.names import HF_EXTRAS
from sfr_jax.convert.openai import adapter_layers, load_openai_clip
from sfr_jax.convert.sidecar import SIDECAR_FORMAT, sidecar_path
from sfr_jax.errors import InputError, OutputError, UnknownNames
from sfr_jax.fileio import atomic_directory, atomic_path, write_json
from sfr_jax.models.clip import interpolate_position_embedding
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.sfr import SFRConfig
from sfr_jax.models.store import flat_params

EXTRAS_FILE = "sfr_extras.safetensors"
HF_SIDECAR = "sfr.json"
CLASSES_FILE = "classes.yaml"
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")


# ---------------------------------------------------------------- reference layout <-> ours

def to_reference(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Our SFR-Net flat params (`clip.*`, `head.*`, `gcn.*`) -> the reference state_dict layout (numpy)."""
    return names.to_reference(flat)


def from_reference(state: Mapping[str, np.ndarray], *, config=None, vision_heads=None, text_heads=None,
                   source="state"):
    """A reference SFR-Net state (numpy; `module.` allowed) -> (CLIPConfig, our flat SFR-Net params). The CLIP
    shape is inferred (heads = width // 64, as OpenAI's) unless `config` or the head counts are given."""
    config, _, _ = load_openai_clip(dict(state), config=config, vision_heads=vision_heads, text_heads=text_heads)
    try:
        flat = names.from_reference_names(state)
    except UnknownNames as error:
        raise UnknownNames(f"{source}: {error}") from None
    return config, {k: np.asarray(v, np.float32) for k, v in flat.items()}


def hf_extras(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Adapters, head and GCN in PyTorch layouts under the names documented at the top of this module."""
    return HF_EXTRAS.to_theirs({k: v for k, v in flat.items() if k.startswith(("head.", "gcn.")) or ".adapter." in k})


def hf_extras_to_ours(extras: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Inverse of hf_extras (our flat names with the `clip.` prefix for adapters)."""
    try:
        return {k: np.asarray(v, np.float32) for k, v in HF_EXTRAS.to_ours(extras).items()}
    except UnknownNames as error:
        raise UnknownNames(f"{EXTRAS_FILE}: {error}") from None


def sfr_config_from_flat(flat: Mapping[str, np.ndarray], config, *, dropouts=None):
    """The SFRConfig (adapter layers and width, head and GCN sizes, switches) that fits these params."""
    clip = {k[len("clip."):]: v for k, v in flat.items() if k.startswith("clip.")}
    layers = adapter_layers(clip)
    vision, text = layers["vision_model"], layers["text_model"]
    nv, nt = config.vision.num_hidden_layers, config.text.num_hidden_layers
    if not vision and not text:
        rs = RSConfig(enabled=False)
    else:
        full_v, full_t = tuple(range(nv)), tuple(range(nt))
        if vision == full_v and text == full_t:
            chosen = None
        else:
            chosen = tuple(sorted(set(vision) | set(text)))
            want_v = tuple(i for i in chosen if i < nv)
            want_t = tuple(i for i in chosen if i < nt)
            if (vision, text) != (want_v, want_t):
                raise ValueError(f"adapters in vision layers {vision} and text layers {text}: one layer list "
                                 "for both towers cannot describe this")
        key = next(k for k in clip if ".adapter.down.kernel" in k)
        rs = RSConfig(enabled=True, bottleneck_dim=int(np.shape(clip[key])[1]), layers=chosen,
                      **({"dropout": dropouts["rs"]} if dropouts else {}))
    blocks = range(names.head_blocks(flat))
    use_local = "head.out.kernel" in flat
    use_gr = "gcn.gc1.weight" in flat
    kwargs = dict(rs=rs, use_local=use_local, use_gr=use_gr)
    if use_local:
        kwargs.update(head_blocks=len(blocks),
                      head_hidden=int(np.shape(flat["head.blocks.0.fc1.kernel"])[1]) if blocks else 1024)
    if use_gr:
        kwargs.update(gcn_hidden=int(np.shape(flat["gcn.gc1.weight"])[1]))
    if dropouts:
        kwargs.update(head_dropout=dropouts["head"], gcn_dropout=dropouts["gcn"])
    return SFRConfig(**kwargs)


# ---------------------------------------------------------------- the sidecar

def sfr_config_dict(config) -> dict:
    """SFRConfig -> JSON-able dict (rs nested)."""
    d = dataclasses.asdict(config)
    rs = d.pop("rs")
    rs["layers"] = list(rs["layers"]) if rs["layers"] is not None else None
    return {"rs": rs, "sfr": d}


def sfr_config_from_dict(d: Mapping):
    """Inverse of sfr_config_dict."""
    rs = dict(d["rs"])
    rs["layers"] = tuple(rs["layers"]) if rs.get("layers") is not None else None
    return SFRConfig(rs=RSConfig(**rs), **d["sfr"])


def make_sidecar(model, class_set, tokenizer=None, *, layout: str, normalization=((0.5,) * 3, (0.5,) * 3),
                 provenance: Optional[dict] = None, weights_file: str = "", calibration: Optional[dict] = None) -> dict:
    """The JSON metadata that makes an export self-contained: shapes, classes (+ token ids), adjacency,
    normalisation, the calibration record (decision thresholds and Platt maps) when the step has one, ..."""
    clip = model.clip
    clip_cfg = clip.config.to_hf_dict()
    clip_cfg["vision_config"]["image_size"] = int(clip.image_size)  # the table is exported at this grid
    mean, std = normalization
    adjacency = model.adjacency[...] if model.adjacency is not None else None
    classes = [{"code": c.code, "phrase": c.phrase, "description": c.description, "seen": bool(c.seen),
                **({"codes": dict(c.standard_codes)} if c.standard_codes else {})}  # inspection standards' codes
               for c in class_set.classes]
    tokens = np.asarray(model.class_tokens[...])
    if tokens.shape[0] != len(classes):
        raise ValueError(f"the model holds {tokens.shape[0]} class prompts but the class set has {len(classes)}")
    side = {
        "format": SIDECAR_FORMAT,
        "layout": layout,
        "weights": weights_file,
        "model": {"clip": clip_cfg, **sfr_config_dict(model.config)},
        "image_size": int(clip.image_size),
        "normalization": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        "class_set": class_set.name,
        "classes": classes,
        "seen_ids": list(class_set.seen_ids),
        "unseen_ids": list(class_set.unseen_ids),
        "class_tokens": tokens.astype(int).tolist(),
        "adjacency": np.asarray(adjacency, np.float32).tolist() if adjacency is not None else None,
        "calibration": calibration,
        "provenance": {"exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "sfr_jax": sfr_jax.__version__, **(provenance or {})},
    }
    if tokenizer is not None:
        side["phrase_tokens"] = tokenizer.encode(list(class_set.phrases)).astype(int).tolist()
    return side


# ---------------------------------------------------------------- writers (atomic)

def _contiguous(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    # (np.ascontiguousarray would turn a 0-d tensor such as logit_scale into shape [1])
    return {k: np.array(v, order="C", copy=True) for k, v in state.items()}


def save_state(path: str, state: Mapping[str, np.ndarray]) -> None:
    """A numpy state dict -> .pth (torch.save of tensors) or .safetensors, written atomically."""
    if path.endswith(".safetensors"):
        with atomic_path(path) as tmp:
            save_numpy(_contiguous(state), tmp, metadata={"format": "pt"})
    elif path.endswith((".pth", ".pt")):
        import torch

        tensors = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}
        with atomic_path(path) as tmp:
            torch.save(tensors, tmp)
    else:
        raise InputError(f"--to {path}: use a .pth, .pt or .safetensors file name")


def model_flat(model) -> Dict[str, np.ndarray]:
    """Every parameter of an SFRNet as {dotted name: fp32 numpy}."""
    return {k: np.asarray(v, np.float32) for k, v in flat_params(model).items()}


def regridded(model, flat):
    """When the model runs at another size than its CLIP config, export the position table at that grid."""
    key = "clip.vision_model.embeddings.position_embedding.embedding"
    grid = model.clip.image_size // model.clip.config.vision.patch_size
    if grid ** 2 + 1 == flat[key].shape[0]:
        return flat
    table = np.asarray(interpolate_position_embedding(flat[key], grid, grid), np.float32)
    return {**flat, key: table}


def check_new_outputs(paths, overwrite: bool, option: str = "--to") -> None:
    """Refuse to replace any of `paths` (outputs written as one unit) unless `overwrite`."""
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        what = f"{existing[0]} exists" if len(existing) == 1 else f"{' and '.join(existing)} exist"
        raise OutputError(f"{what}; choose another {option} or pass --overwrite")


def export_reference(model, class_set, path: str, tokenizer=None, *, normalization=((0.5,) * 3, (0.5,) * 3),
                     provenance=None, overwrite: bool = True, calibration=None) -> Tuple[str, str]:
    """Write the reference-layout state (.pth/.safetensors) and its sidecar (.json) as one unit: the sidecar
    last, so a weights file without one is never taken for complete; return both paths."""
    if not path.endswith(WEIGHT_SUFFIXES):
        raise InputError(f"--to {path}: the reference layout is a .pth or .safetensors file (.pt also works)")
    meta = sidecar_path(path)
    check_new_outputs([path, meta], overwrite)
    if not (model.config.use_local and model.config.use_gr):
        print("export: warning: this model has no MEF head or no GR; the reference SFR-Net always has both and "
              "will not load it with strict=True (our torch_model.SFRNetTorch will)")
    state = to_reference(regridded(model, model_flat(model)))
    side = make_sidecar(model, class_set, tokenizer, layout="reference", normalization=normalization,
                        provenance=provenance, weights_file=os.path.basename(path), calibration=calibration)
    if os.path.exists(meta):
        os.remove(meta)  # never a new weights file beside an old sidecar
    save_state(path, state)
    write_json(meta, side)
    return os.path.abspath(path), os.path.abspath(meta)


def export_hf(model, class_set, out_dir: str, tokenizer=None, *, normalization=((0.5,) * 3, (0.5,) * 3),
              provenance=None, overwrite: bool = False, calibration=None) -> str:
    """Write the Hugging Face layout folder (see the module docstring) atomically; return its path."""
    out_dir = os.path.abspath(out_dir)
    if out_dir.endswith(WEIGHT_SUFFIXES):
        raise InputError(f"--to {out_dir}: the hf layout is a folder; name one without a file extension")
    check_new_outputs([out_dir], overwrite)
    flat = regridded(model, model_flat(model))
    clip = {k[len("clip."):]: v for k, v in flat.items() if k.startswith("clip.") and ".adapter." not in k}
    side = make_sidecar(model, class_set, tokenizer, layout="hf", normalization=normalization,
                        provenance=provenance, weights_file=EXTRAS_FILE, calibration=calibration)
    config = dict(side["model"]["clip"], torch_dtype="float32")
    with atomic_directory(out_dir) as tmp:
        save_numpy(_contiguous(ours_to_hf(clip)), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        save_numpy(_contiguous(hf_extras(flat)), os.path.join(tmp, EXTRAS_FILE), metadata={"format": "pt"})
        write_json(os.path.join(tmp, "config.json"), config, indent=2)
        write_json(os.path.join(tmp, HF_SIDECAR), side)
        class_set.save(os.path.join(tmp, CLASSES_FILE))
        if tokenizer is not None:
            tokenizer.save(tmp)
    return out_dir
