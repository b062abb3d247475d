"""OpenAI-format CLIP state dicts <-> our parameter names.

Covers OpenAI's released `.pt` files (TorchScript archives or plain state dicts) and the reference SFR-Net
`.pth` (CLIP under `clip_model.`, adapted blocks as `resblocks.N.original_block.*` + `resblocks.N.adapter.*`,
optionally behind DataParallel's `module.`). Attention there is fused: `in_proj_weight` = [q; k; v].
"""
from __future__ import annotations

import os
import re
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from sfr_jax.convert import names
from sfr_jax.convert.names import OPENAI
from sfr_jax.cli import one_line
from sfr_jax.errors import InputError, MissingInput, UnknownNames
from sfr_jax.models.clip import CLIPConfig, TextConfig, VisionConfig
from sfr_jax.models.store import check_params, expected_shapes

def strip_prefixes(state: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Drop `module.`; split a reference SFR-Net state into (CLIP part without `clip_model.`, the rest)."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("clip_model.") for k in state):
        clip = {k[len("clip_model."):]: v for k, v in state.items() if k.startswith("clip_model.")}
        rest = {k: v for k, v in state.items() if not k.startswith("clip_model.")}
        return clip, rest
    return dict(state), {}


def openai_to_ours(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """OpenAI CLIP names (no prefixes; the reference's `original_block.` allowed) -> our flat names, fp32."""
    flat = OPENAI.to_ours(names.unwrap_reference(dict(state)))
    return {k: np.asarray(v, np.float32) for k, v in flat.items()}


def ours_to_openai(flat: Mapping[str, np.ndarray], *, reference_layout: bool = False) -> Dict[str, np.ndarray]:
    """Inverse of openai_to_ours (q/k/v fused back). With reference_layout, blocks that carry an adapter are
    written as the reference's RSBlockWrapper (`resblocks.N.original_block.*`, `resblocks.N.adapter.*`)."""
    state = OPENAI.to_theirs(flat)
    return names.wrap_reference(state) if reference_layout else state


def infer_config(state: Mapping[str, np.ndarray], *, vision_heads: Optional[int] = None,
                 text_heads: Optional[int] = None) -> CLIPConfig:
    """CLIP shape from an OpenAI-format state (no prefixes); heads default to width // 64 as OpenAI's build_model."""
    def need(key):
        if key not in state:
            raise UnknownNames(f"OpenAI-format CLIP state lacks {key!r} (is it a ViT CLIP?)")
        return np.shape(state[key])

    def count(prefix):
        return len({int(m.group(1)) for k in state for m in [re.match(prefix + r"\.resblocks\.(\d+)\.", k)] if m})

    conv = need("visual.conv1.weight")
    vw, patch = conv[0], conv[-1]
    grid = int(round((need("visual.positional_embedding")[0] - 1) ** 0.5))
    tw = need("ln_final.weight")[0]
    fc_key = lambda tower: next((k for k in state if re.match(tower + r"\.resblocks\.0\.(original_block\.)?mlp\.c_fc\.weight$", k)), None)
    vfc, tfc = fc_key(r"visual\.transformer"), fc_key(r"transformer")
    if vfc is None or tfc is None:
        raise UnknownNames("OpenAI-format CLIP state lacks resblocks.0 mlp.c_fc.weight in a tower")
    vision = VisionConfig(hidden_size=vw, intermediate_size=np.shape(state[vfc])[0],
                          num_hidden_layers=count(r"visual\.transformer"), num_attention_heads=vision_heads or max(1, vw // 64),
                          image_size=grid * patch, patch_size=patch)
    text = TextConfig(hidden_size=tw, intermediate_size=np.shape(state[tfc])[0], num_hidden_layers=count("transformer"),
                      num_attention_heads=text_heads or max(1, tw // 64), vocab_size=need("token_embedding.weight")[0],
                      max_position_embeddings=need("positional_embedding")[0])
    return CLIPConfig(vision, text, projection_dim=need("text_projection")[1])


def read_torch_state(path: str) -> Dict[str, np.ndarray]:
    """Tensors of a PyTorch file: a TorchScript archive (OpenAI's .pt: loaded as TorchScript, which runs no
    pickled Python) or a state dict saved with torch.save (.pth/.pt: loaded with weights_only=True, so a
    file cannot run code). Anything else is an InputError naming the file."""
    import torch

    if not os.path.isfile(path):
        raise MissingInput(f"checkpoint {path}: no such file")
    try:
        obj = torch.jit.load(path, map_location="cpu").state_dict()
    except Exception:  # not TorchScript: try a weights-only pickle
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            first = one_line(str(error)).split(";")[0][:200]
            raise InputError(f"{path} is not a PyTorch checkpoint that can be read safely (TorchScript or a "
                             f"weights-only torch.save file): {type(error).__name__}: {first}") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a state dict")
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            v = v.detach()
            out[k] = v.float().numpy() if v.is_floating_point() else v.numpy()
        else:
            out[k] = np.asarray(v)
    return out


def load_openai_clip(source, *, config: Optional[CLIPConfig] = None, vision_heads: Optional[int] = None,
                     text_heads: Optional[int] = None):
    """An OpenAI .pt / reference SFR-Net .pth (path or state dict) -> (config, flat CLIP params incl. adapters,
    the non-CLIP rest such as `mlp.*`, `gcn_corrector.*`). Strict: missing/unexpected/mis-shaped tensors raise."""
    where = source if isinstance(source, str) else "state dict"
    state = read_torch_state(source) if isinstance(source, str) else {k: np.asarray(v) for k, v in source.items()}
    clip_state, rest = strip_prefixes(state)
    try:
        config = config or infer_config(clip_state, vision_heads=vision_heads, text_heads=text_heads)
        flat = openai_to_ours(clip_state)
    except UnknownNames as error:
        raise UnknownNames(f"{where}: {error}") from None
    base = {k: v for k, v in flat.items() if ".adapter." not in k}
    adapters = {k: v for k, v in flat.items() if ".adapter." in k}
    check_params(base, expected_shapes(config), source=where)
    if adapters:
        check_adapters(adapters, config, where)
    return config, flat, rest


def adapter_layers(flat: Mapping[str, np.ndarray]) -> Dict[str, Tuple[int, ...]]:
    """{'vision_model'|'text_model': sorted layer indices carrying an adapter} in flat params."""
    out: Dict[str, set] = {"vision_model": set(), "text_model": set()}
    for k in flat:
        m = re.match(r"^(vision_model|text_model)\.encoder\.layers\.(\d+)\.adapter\.", k)
        if m:
            out[m.group(1)].add(int(m.group(2)))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def check_adapters(adapters: Mapping[str, np.ndarray], config: CLIPConfig, source: str = "checkpoint") -> int:
    """Validate adapter tensors (complete per block, one bottleneck width, shapes fit the towers); return the width."""
    widths = {"vision_model": config.vision.hidden_size, "text_model": config.text.hidden_size}
    layers = {"vision_model": config.vision.num_hidden_layers, "text_model": config.text.num_hidden_layers}
    blocks: Dict[str, Dict[str, np.ndarray]] = {}
    problems = []
    for k, v in adapters.items():
        m = re.match(r"^(vision_model|text_model)\.encoder\.layers\.(\d+)\.adapter\.((?:down|up)\.(?:kernel|bias))$", k)
        if not m or int(m.group(2)) >= layers[m.group(1)]:
            problems.append(f"unexpected {k}")
            continue
        blocks.setdefault(f"{m.group(1)}.encoder.layers.{m.group(2)}.adapter", {})[m.group(3)] = v
    bottlenecks = set()
    for prefix, parts in blocks.items():
        d = widths[prefix.split(".")[0]]
        missing = sorted({"down.kernel", "down.bias", "up.kernel", "up.bias"} - set(parts))
        if missing:
            problems.append(f"missing {[prefix + '.' + p for p in missing]}")
            continue
        b = np.shape(parts["down.kernel"])[1]
        bottlenecks.add(b)
        want = {"down.kernel": (d, b), "down.bias": (b,), "up.kernel": (b, d), "up.bias": (d,)}
        problems += [f"wrong shape {prefix}.{p}: {tuple(np.shape(parts[p]))} != expected {s}"
                     for p, s in want.items() if tuple(np.shape(parts[p])) != s]
    if len(bottlenecks) > 1:
        problems.append(f"adapters disagree on the bottleneck width: {sorted(bottlenecks)}")
    if problems:
        raise InputError(f"{source}: adapter tensors do not fit the CLIP config: " + "; ".join(problems))
    return bottlenecks.pop() if bottlenecks else 0
