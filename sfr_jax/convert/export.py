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
import json
import os
import re
import tempfile
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from sfr_jax.convert.torch_model import SIDECAR_FORMAT, sidecar_path
from sfr_jax.fileio import atomic_directory

LAYOUTS = ("reference", "hf")
EXTRAS_FILE = "sfr_extras.safetensors"
HF_SIDECAR = "sfr.json"
CLASSES_FILE = "classes.yaml"

_HEAD = re.compile(r"^head\.blocks\.(\d+)\.(layer_norm|fc1|fc2)\.(scale|kernel|bias)$")
_REF_HEAD = re.compile(r"^mlp\.(\d+)\.(?:(layer_norm|fc1|fc2)\.)?(weight|bias)$")


# ---------------------------------------------------------------- name maps (flat numpy dicts)

def head_to_reference(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Our `head.*` / `gcn.*` params -> the reference's `mlp.*` / `gcn_corrector.*` (weights [out, in])."""
    blocks = {int(m.group(1)) for m in map(_HEAD.match, flat) if m}
    out_index = (max(blocks) + 1) if blocks else 0
    out = {}
    for name, x in flat.items():
        x = np.asarray(x)
        m = _HEAD.match(name)
        if m:
            i, part, leaf = m.groups()
            if leaf == "kernel":
                out[f"mlp.{i}.{part}.weight"] = np.ascontiguousarray(x.T)
            else:
                out[f"mlp.{i}.{part}.{'weight' if leaf == 'scale' else 'bias'}"] = x
        elif name == "head.out.kernel":
            out[f"mlp.{out_index}.weight"] = np.ascontiguousarray(x.T)
        elif name == "head.out.bias":
            out[f"mlp.{out_index}.bias"] = x
        elif name in ("gcn.gc1.weight", "gcn.gc2.weight"):
            out["gcn_corrector." + name[len("gcn."):]] = x  # same [in, out] layout
        else:
            raise KeyError(f"no reference name for {name!r}")
    return out


def head_from_reference(rest: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Inverse of head_to_reference: the non-CLIP part of a reference state -> our `head.*` / `gcn.*`."""
    indices = {int(m.group(1)) for m in map(_REF_HEAD.match, rest) if m}
    out_index = max(indices) if indices else -1
    out, unknown = {}, []
    for name, x in rest.items():
        x = np.asarray(x, np.float32)
        m = _REF_HEAD.match(name)
        if m and int(m.group(1)) == out_index and m.group(2) is None:
            out[f"head.out.{'kernel' if m.group(3) == 'weight' else 'bias'}"] = \
                np.ascontiguousarray(x.T) if m.group(3) == "weight" else x
        elif m and m.group(2) is not None and int(m.group(1)) < out_index:
            i, part, leaf = m.groups()
            if part == "layer_norm":
                out[f"head.blocks.{i}.layer_norm.{'scale' if leaf == 'weight' else 'bias'}"] = x
            else:
                out[f"head.blocks.{i}.{part}.{'kernel' if leaf == 'weight' else 'bias'}"] = \
                    np.ascontiguousarray(x.T) if leaf == "weight" else x
        elif name in ("gcn_corrector.gc1.weight", "gcn_corrector.gc2.weight"):
            out["gcn." + name[len("gcn_corrector."):]] = x
        else:
            unknown.append(name)
    if unknown:
        raise KeyError(f"unexpected tensors in the reference SFR-Net state: {unknown}")
    return out


def to_reference(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Our SFR-Net flat params (`clip.*`, `head.*`, `gcn.*`) -> the reference state_dict layout (numpy)."""
    from sfr_jax.convert.openai import ours_to_openai

    clip = {k[len("clip."):]: v for k, v in flat.items() if k.startswith("clip.")}
    rest = {k: v for k, v in flat.items() if not k.startswith("clip.")}
    out = {f"clip_model.{k}": v for k, v in ours_to_openai(clip, reference_layout=True).items()}
    out.update(head_to_reference(rest))
    return out


def from_reference(state: Mapping[str, np.ndarray], *, config=None, vision_heads=None, text_heads=None,
                   source="state"):
    """A reference SFR-Net state (numpy; `module.` allowed) -> (CLIPConfig, our flat SFR-Net params). The CLIP
    shape is inferred (heads = width // 64, as OpenAI's) unless `config` or the head counts are given."""
    from sfr_jax.convert.openai import load_openai_clip

    config, clip_flat, rest = load_openai_clip(dict(state), config=config, vision_heads=vision_heads,
                                               text_heads=text_heads)
    try:
        head = head_from_reference(rest)
    except KeyError as error:
        raise KeyError(f"{source}: {error.args[0]}") from None
    flat = {f"clip.{k}": np.asarray(v, np.float32) for k, v in clip_flat.items()}
    flat.update(head)
    return config, flat


def sfr_config_from_flat(flat: Mapping[str, np.ndarray], config, *, dropouts=None):
    """The SFRConfig (adapter layers and width, head and GCN sizes, switches) that fits these params."""
    from sfr_jax.convert.openai import adapter_layers
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.models.sfr import SFRConfig

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
    blocks = sorted({int(m.group(1)) for m in map(_HEAD.match, flat) if m})
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
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.models.sfr import SFRConfig

    rs = dict(d["rs"])
    rs["layers"] = tuple(rs["layers"]) if rs.get("layers") is not None else None
    return SFRConfig(rs=RSConfig(**rs), **d["sfr"])


def make_sidecar(model, class_set, tokenizer=None, *, layout: str, normalization=((0.5,) * 3, (0.5,) * 3),
                 provenance: Optional[dict] = None, weights_file: str = "") -> dict:
    """The JSON metadata that makes an export self-contained: shapes, classes (+ token ids), adjacency, ..."""
    import sfr_jax

    clip = model.clip
    clip_cfg = clip.config.to_hf_dict()
    clip_cfg["vision_config"]["image_size"] = int(clip.image_size)  # the table is exported at this grid
    mean, std = normalization
    adjacency = model.adjacency[...] if model.adjacency is not None else None
    classes = [{"code": c.code, "phrase": c.phrase, "description": c.description, "seen": bool(c.seen)}
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
        "provenance": {"exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "sfr_jax": sfr_jax.__version__, **(provenance or {})},
    }
    if tokenizer is not None:
        side["phrase_tokens"] = tokenizer.encode(list(class_set.phrases)).astype(int).tolist()
    return side


# ---------------------------------------------------------------- writers (atomic)

def _atomic_write(path: str, write) -> None:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", dir=os.path.dirname(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_json(path: str, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
    _atomic_write(path, write)


def save_state(path: str, state: Mapping[str, np.ndarray]) -> None:
    """A numpy state dict -> .pth (torch.save of tensors) or .safetensors, written atomically."""
    import torch

    tensors = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file
        _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    elif path.endswith((".pth", ".pt")):
        _atomic_write(path, lambda tmp: torch.save(tensors, tmp))
    else:
        raise ValueError(f"--to {path}: use a .pth, .pt or .safetensors file name")


def model_flat(model) -> Dict[str, np.ndarray]:
    """Every parameter of an SFRNet as {dotted name: fp32 numpy}."""
    from sfr_jax.convert.store import flat_params
    return {k: np.asarray(v, np.float32) for k, v in flat_params(model).items()}


def _regridded(model, flat):
    """When the model runs at another size than its CLIP config, export the position table at that grid."""
    from sfr_jax.models.clip import interpolate_position_embedding

    key = "clip.vision_model.embeddings.position_embedding.embedding"
    grid = model.clip.image_size // model.clip.config.vision.patch_size
    if grid ** 2 + 1 == flat[key].shape[0]:
        return flat
    table = np.asarray(interpolate_position_embedding(flat[key], grid, grid), np.float32)
    return {**flat, key: table}


def export_reference(model, class_set, path: str, tokenizer=None, *, normalization=((0.5,) * 3, (0.5,) * 3),
                     provenance=None) -> Tuple[str, str]:
    """Write the reference-layout state (.pth/.safetensors) and its sidecar (.json); return both paths."""
    if not (model.config.use_local and model.config.use_gr):
        print("export: warning: this model has no MEF head or no GR; the reference SFR-Net always has both and "
              "will not load it with strict=True (our torch_model.SFRNetTorch will)")
    state = to_reference(_regridded(model, model_flat(model)))
    side = make_sidecar(model, class_set, tokenizer, layout="reference", normalization=normalization,
                        provenance=provenance, weights_file=os.path.basename(path))
    save_state(path, state)
    meta = sidecar_path(path)
    _write_json(meta, side)
    return os.path.abspath(path), os.path.abspath(meta)


def hf_extras(flat: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Adapters, head and GCN in PyTorch layouts under the names documented at the top of this module."""
    from sfr_jax.convert.hf import ours_to_hf

    out = {}
    adapters = {k[len("clip."):]: v for k, v in flat.items() if k.startswith("clip.") and ".adapter." in k}
    out.update(ours_to_hf(adapters))
    for name, x in flat.items():
        if name.startswith(("head.", "gcn.")):
            if name.endswith(".kernel"):
                out[name[: -len("kernel")] + "weight"] = np.ascontiguousarray(np.asarray(x).T)
            elif name.endswith(".scale"):
                out[name[: -len("scale")] + "weight"] = np.asarray(x)
            else:
                out[name] = np.asarray(x)
    return out


def hf_extras_to_ours(extras: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Inverse of hf_extras (our flat names with the `clip.` prefix for adapters)."""
    from sfr_jax.convert.hf import hf_to_ours

    adapters = {k: v for k, v in extras.items() if ".adapter." in k}
    out = {f"clip.{k}": v for k, v in hf_to_ours(adapters).items()}
    for name, x in extras.items():
        if name in adapters:
            continue
        x = np.asarray(x, np.float32)
        if re.match(r"^head\.(blocks\.\d+\.(fc1|fc2)|out)\.weight$", name):
            out[name[: -len("weight")] + "kernel"] = np.ascontiguousarray(x.T)
        elif re.match(r"^head\.blocks\.\d+\.layer_norm\.weight$", name):
            out[name[: -len("weight")] + "scale"] = x
        elif re.match(r"^(head\..*\.bias|gcn\.gc[12]\.weight)$", name):
            out[name] = x
        else:
            raise KeyError(f"unexpected tensor {name!r} in {EXTRAS_FILE}")
    return out


def export_hf(model, class_set, out_dir: str, tokenizer=None, *, normalization=((0.5,) * 3, (0.5,) * 3),
              provenance=None, overwrite: bool = False) -> str:
    """Write the Hugging Face layout folder (see the module docstring) atomically; return its path."""
    import torch
    from safetensors.torch import save_file

    from sfr_jax.convert.hf import ours_to_hf

    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f"{out_dir} exists; choose another --to or pass --overwrite")
    flat = _regridded(model, model_flat(model))
    clip = {k[len("clip."):]: v for k, v in flat.items() if k.startswith("clip.") and ".adapter." not in k}
    hf_state = ours_to_hf(clip)
    extras = hf_extras(flat)
    side = make_sidecar(model, class_set, tokenizer, layout="hf", normalization=normalization,
                        provenance=provenance, weights_file=EXTRAS_FILE)
    config = dict(side["model"]["clip"], torch_dtype="float32")
    with atomic_directory(out_dir) as tmp:
        as_torch = lambda d: {k: torch.from_numpy(np.array(v, copy=True)) for k, v in d.items()}
        save_file(as_torch(hf_state), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        save_file(as_torch(extras), os.path.join(tmp, EXTRAS_FILE), metadata={"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(tmp, HF_SIDECAR), "w") as f:
            json.dump(side, f, indent=1)
        class_set.save(os.path.join(tmp, CLASSES_FILE))
        if tokenizer is not None:
            tokenizer.save(tmp)
    return out_dir
