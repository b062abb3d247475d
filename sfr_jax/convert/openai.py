"""OpenAI-format CLIP state dicts <-> our parameter names.

Covers OpenAI's released `.pt` files (TorchScript archives or plain state dicts) and the reference SFR-Net
`.pth` (CLIP under `clip_model.`, adapted blocks as `resblocks.N.original_block.*` + `resblocks.N.adapter.*`,
optionally behind DataParallel's `module.`). Attention there is fused: `in_proj_weight` = [q; k; v].
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from sfr_jax.models.clip import CLIPConfig, TextConfig, VisionConfig

# Non-tensor entries of OpenAI's TorchScript archives.
_OPENAI_IGNORED = ("input_resolution", "context_length", "vocab_size")

_BLOCK = re.compile(r"^(visual\.transformer|transformer)\.resblocks\.(\d+)\.(?:original_block\.)?(.+)$")
_ADAPTER = re.compile(r"^(visual\.transformer|transformer)\.resblocks\.(\d+)\.adapter\.(down_project|up_project)\.(weight|bias)$")

# OpenAI block-local name -> (our block-local name, transform)
_BLOCK_MAP = {
    "attn.out_proj.weight": ("self_attn.out_proj.kernel", "T"),
    "attn.out_proj.bias": ("self_attn.out_proj.bias", ""),
    "ln_1.weight": ("layer_norm1.scale", ""),
    "ln_1.bias": ("layer_norm1.bias", ""),
    "ln_2.weight": ("layer_norm2.scale", ""),
    "ln_2.bias": ("layer_norm2.bias", ""),
    "mlp.c_fc.weight": ("mlp.fc1.kernel", "T"),
    "mlp.c_fc.bias": ("mlp.fc1.bias", ""),
    "mlp.c_proj.weight": ("mlp.fc2.kernel", "T"),
    "mlp.c_proj.bias": ("mlp.fc2.bias", ""),
}
# OpenAI top-level name -> (our name, transform); `proj` matrices are used as x @ proj, i.e. already [in, out].
_TOP_MAP = {
    "visual.conv1.weight": ("vision_model.embeddings.patch_embedding.kernel", "conv"),
    "visual.class_embedding": ("vision_model.embeddings.class_embedding", ""),
    "visual.positional_embedding": ("vision_model.embeddings.position_embedding.embedding", ""),
    "visual.ln_pre.weight": ("vision_model.pre_layrnorm.scale", ""),
    "visual.ln_pre.bias": ("vision_model.pre_layrnorm.bias", ""),
    "visual.ln_post.weight": ("vision_model.post_layernorm.scale", ""),
    "visual.ln_post.bias": ("vision_model.post_layernorm.bias", ""),
    "visual.proj": ("visual_projection.kernel", ""),
    "token_embedding.weight": ("text_model.embeddings.token_embedding.embedding", ""),
    "positional_embedding": ("text_model.embeddings.position_embedding.embedding", ""),
    "ln_final.weight": ("text_model.final_layer_norm.scale", ""),
    "ln_final.bias": ("text_model.final_layer_norm.bias", ""),
    "text_projection": ("text_projection.kernel", ""),
    "logit_scale": ("logit_scale", ""),
}
_TOWER = {"visual.transformer": "vision_model.encoder.layers", "transformer": "text_model.encoder.layers"}
_ADAPTER_PART = {"down_project": "down", "up_project": "up"}


def _apply(kind: str, x: np.ndarray) -> np.ndarray:
    if kind == "T":
        return np.ascontiguousarray(x.T)
    if kind == "conv":  # [out, in, kh, kw] -> [kh, kw, in, out]
        return np.ascontiguousarray(np.transpose(x, (2, 3, 1, 0)))
    return x


def strip_prefixes(state: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Drop `module.`; split a reference SFR-Net state into (CLIP part without `clip_model.`, the rest)."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("clip_model.") for k in state):
        clip = {k[len("clip_model."):]: v for k, v in state.items() if k.startswith("clip_model.")}
        rest = {k: v for k, v in state.items() if not k.startswith("clip_model.")}
        return clip, rest
    return dict(state), {}


def openai_to_ours(state: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """OpenAI CLIP names (no prefixes) -> our flat names; fused q/k/v split. Unknown keys raise, naming them."""
    out, unknown = {}, []
    for name, value in state.items():
        if name in _OPENAI_IGNORED:
            continue
        x = np.asarray(value, np.float32)
        if name in _TOP_MAP:
            ours, kind = _TOP_MAP[name]
            out[ours] = _apply(kind, x)
            continue
        m = _ADAPTER.match(name)
        if m:
            tower, i, part, leaf = m.groups()
            out[f"{_TOWER[tower]}.{i}.adapter.{_ADAPTER_PART[part]}.{'kernel' if leaf == 'weight' else 'bias'}"] = \
                _apply("T" if leaf == "weight" else "", x)
            continue
        m = _BLOCK.match(name)
        if m:
            tower, i, local = m.groups()
            prefix = f"{_TOWER[tower]}.{i}"
            if local in ("attn.in_proj_weight", "attn.in_proj_bias"):
                if x.shape[0] % 3:
                    raise ValueError(f"{name}: first dimension {x.shape[0]} is not 3 x width")
                leaf = "kernel" if local.endswith("weight") else "bias"
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), np.split(x, 3, axis=0)):
                    out[f"{prefix}.self_attn.{proj}.{leaf}"] = _apply("T" if leaf == "kernel" else "", part)
                continue
            if local in _BLOCK_MAP:
                ours, kind = _BLOCK_MAP[local]
                out[f"{prefix}.{ours}"] = _apply(kind, x)
                continue
        unknown.append(name)
    if unknown:
        raise KeyError(f"unexpected tensors in the OpenAI-format CLIP state: {unknown}")
    return out


def ours_to_openai(flat: Mapping[str, np.ndarray], *, reference_layout: bool = False) -> Dict[str, np.ndarray]:
    """Inverse of openai_to_ours (q/k/v fused back). With reference_layout, blocks that carry an adapter are
    written as the reference's RSBlockWrapper (`resblocks.N.original_block.*`, `resblocks.N.adapter.*`)."""
    top = {ours: (oa, kind) for oa, (ours, kind) in _TOP_MAP.items()}
    block = {ours: (oa, kind) for oa, (ours, kind) in _BLOCK_MAP.items()}
    towers = {v: k for k, v in _TOWER.items()}
    layer = re.compile(r"^(vision_model\.encoder\.layers|text_model\.encoder\.layers)\.(\d+)\.(.+)$")
    adapted = {(m.group(1), m.group(2)) for m in map(layer.match, flat) if m and m.group(3).startswith("adapter.")}
    out, qkv, unknown = {}, {}, []
    for name, value in flat.items():
        x = np.asarray(value)
        if name in top:
            oa, kind = top[name]
            out[oa] = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))) if kind == "conv" else x
            continue
        m = layer.match(name)
        if not m:
            unknown.append(name)
            continue
        tower, i, local = m.groups()
        base = f"{towers[tower]}.resblocks.{i}."
        wrapped = base + ("original_block." if reference_layout and (tower, i) in adapted else "")
        am = re.match(r"^adapter\.(down|up)\.(kernel|bias)$", local)
        qm = re.match(r"^self_attn\.(q|k|v)_proj\.(kernel|bias)$", local)
        if am:
            part = {"down": "down_project", "up": "up_project"}[am.group(1)]
            out[f"{base}adapter.{part}.{'weight' if am.group(2) == 'kernel' else 'bias'}"] = \
                np.ascontiguousarray(x.T) if am.group(2) == "kernel" else x
        elif qm:
            qkv.setdefault((wrapped, qm.group(2)), {})[qm.group(1)] = x.T if qm.group(2) == "kernel" else x
        elif local in block:
            oa, kind = block[local]
            out[wrapped + oa] = np.ascontiguousarray(x.T) if kind == "T" else x
        else:
            unknown.append(name)
    for (wrapped, leaf), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise KeyError(f"{wrapped}: q/k/v {leaf} incomplete, have {sorted(parts)}")
        fused = np.concatenate([parts["q"], parts["k"], parts["v"]], axis=0)
        out[wrapped + ("attn.in_proj_weight" if leaf == "kernel" else "attn.in_proj_bias")] = np.ascontiguousarray(fused)
    if unknown:
        raise KeyError(f"no OpenAI name for: {unknown}")
    return out


def infer_config(state: Mapping[str, np.ndarray], *, vision_heads: Optional[int] = None,
                 text_heads: Optional[int] = None) -> CLIPConfig:
    """CLIP shape from an OpenAI-format state (no prefixes); heads default to width // 64 as OpenAI's build_model."""
    def need(key):
        if key not in state:
            raise KeyError(f"OpenAI-format CLIP state lacks {key!r} (is it a ViT CLIP?)")
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
        raise KeyError("OpenAI-format CLIP state lacks resblocks.0 mlp.c_fc.weight in a tower")
    vision = VisionConfig(hidden_size=vw, intermediate_size=np.shape(state[vfc])[0],
                          num_hidden_layers=count(r"visual\.transformer"), num_attention_heads=vision_heads or vw // 64,
                          image_size=grid * patch, patch_size=patch)
    text = TextConfig(hidden_size=tw, intermediate_size=np.shape(state[tfc])[0], num_hidden_layers=count("transformer"),
                      num_attention_heads=text_heads or tw // 64, vocab_size=need("token_embedding.weight")[0],
                      max_position_embeddings=need("positional_embedding")[0])
    return CLIPConfig(vision, text, projection_dim=need("text_projection")[1])


def read_torch_state(path: str) -> Dict[str, np.ndarray]:
    """Tensors of a PyTorch file: a TorchScript archive (OpenAI's .pt) or a pickled state dict (.pth/.pt)."""
    import torch
    try:
        obj = torch.jit.load(path, map_location="cpu").state_dict()
    except (RuntimeError, ValueError):
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
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
    from sfr_jax.convert.store import check_params

    where = source if isinstance(source, str) else "state dict"
    state = read_torch_state(source) if isinstance(source, str) else {k: np.asarray(v) for k, v in source.items()}
    clip_state, rest = strip_prefixes(state)
    config = config or infer_config(clip_state, vision_heads=vision_heads, text_heads=text_heads)
    flat = openai_to_ours(clip_state)
    base = {k: v for k, v in flat.items() if ".adapter." not in k}
    adapters = {k: v for k, v in flat.items() if ".adapter." in k}
    check_params(base, config, source=where)
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
        raise ValueError(f"{source}: adapter tensors do not fit the CLIP config: " + "; ".join(problems))
    return bottlenecks.pop() if bottlenecks else 0
