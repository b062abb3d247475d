"""Our on-disk CLIP format (what `sfr-jax convert-clip` writes) and flat-parameter plumbing.

A converted CLIP is a folder: `clip_config.json` (HF-style config), `params/` (Orbax, nested dict of fp32
arrays in our naming) and the tokenizer files. Flat parameters are {dotted.name: np.ndarray}, e.g.
`vision_model.encoder.layers.0.self_attn.q_proj.kernel`.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Mapping, Optional

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from sfr_jax.errors import InputError, MissingInput, OutputError
from sfr_jax.fileio import atomic_directory, write_json
from sfr_jax.models.clip import CLIP, CLIPConfig, Runtime, abstract_clip, is_adapter_path
from sfr_jax.models.rs import RSConfig

CONFIG_FILE = "clip_config.json"
PARAMS_DIR = "params"


def _dotted(path) -> str:
    return ".".join(str(p) for p in path)


def flat_params(module: nnx.Module) -> Dict[str, np.ndarray]:
    """{dotted name: np.ndarray} of every nnx.Param of `module` (adapters included)."""
    return {_dotted(p): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def param_shapes(module: nnx.Module) -> Dict[str, tuple]:
    """{dotted name: shape} of every nnx.Param; works on abstract (eval_shape) modules."""
    return {_dotted(p): tuple(v.get_value().shape) for p, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def expected_shapes(config: CLIPConfig, rs: RSConfig = RSConfig(enabled=False)) -> Dict[str, tuple]:
    """Parameter shapes a CLIP of `config` (with `rs` adapters) must have, computed abstractly."""
    return param_shapes(abstract_clip(config, rs))


def check_params(flat: Mapping[str, np.ndarray], want: Mapping[str, tuple], *, source: str = "checkpoint",
                 allow_missing: Optional[Callable[[str], bool]] = None) -> None:
    """Raise InputError naming every missing, unexpected or mis-shaped tensor of `flat` against the expected
    {name: shape} `want`; names for which `allow_missing` is true may be absent."""
    missing = sorted(k for k in want if k not in flat and not (allow_missing and allow_missing(k)))
    unexpected = sorted(k for k in flat if k not in want)
    wrong = sorted(f"{k}: {tuple(np.shape(flat[k]))} != expected {tuple(want[k])}"
                   for k in want if k in flat and tuple(np.shape(flat[k])) != tuple(want[k]))
    if missing or unexpected or wrong:
        parts = [f"{name}: {items}" for name, items in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
        raise InputError(f"{source} does not fit the model: " + "; ".join(parts))


def assign_params(model: nnx.Module, flat: Mapping[str, np.ndarray], *, strict: bool = True,
                  allow_missing: Optional[Callable[[str], bool]] = is_adapter_path, source: str = "checkpoint") -> None:
    """Copy `flat` into the model's Params in place (fp32). Strict: missing/unexpected/mis-shaped keys raise,
    except missing names for which `allow_missing` is true (by default the adapters keep their init)."""
    state = nnx.state(model, nnx.Param)
    variables = {_dotted(p): v for p, v in nnx.to_flat_state(state)}
    if strict:
        check_params(flat, {k: tuple(v.get_value().shape) for k, v in variables.items()}, source=source,
                     allow_missing=allow_missing)
    for name, value in flat.items():
        if name in variables:
            var = variables[name]
            var.set_value(jnp.asarray(value, dtype=var.get_value().dtype))
    nnx.update(model, state)


def nest(flat: Mapping[str, np.ndarray]) -> dict:
    """{a.b.c: x} -> {a: {b: {c: x}}} (string keys), the tree Orbax stores."""
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def unnest(tree: Mapping, prefix: str = "") -> Dict[str, np.ndarray]:
    """Inverse of nest."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(unnest(value, name + "."))
        else:
            out[name] = np.asarray(value)
    return out


def save_clip(out_dir: str, config: CLIPConfig, flat: Mapping[str, np.ndarray], tokenizer=None,
              *, overwrite: bool = False) -> str:
    """Write our CLIP format to `out_dir` atomically (a sibling temp folder renamed at the end)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise OutputError(f"{out_dir} exists; choose another --out or pass --overwrite")
    with atomic_directory(out_dir) as tmp:
        tree = nest({k: np.asarray(v, np.float32) for k, v in flat.items()})
        with ocp.PyTreeCheckpointer() as ckpt:
            ckpt.save(os.path.join(tmp, PARAMS_DIR), tree)
        write_json(os.path.join(tmp, CONFIG_FILE), config.to_hf_dict(), indent=2)
        if tokenizer is not None:
            tokenizer.save(tmp)
    return out_dir


def load_clip_params(clip_dir: str):
    """(config, flat params) of a folder written by save_clip / `sfr-jax convert-clip`."""
    clip_dir = os.path.abspath(clip_dir)
    cfg_path = os.path.join(clip_dir, CONFIG_FILE)
    params_path = os.path.join(clip_dir, PARAMS_DIR)
    if not os.path.isfile(cfg_path) or not os.path.isdir(params_path):
        raise MissingInput(f"{clip_dir} is not a converted CLIP (needs {CONFIG_FILE} and {PARAMS_DIR}/); "
                                f"make one with `sfr-jax convert-clip --from PATH --out {clip_dir}`")
    config = CLIPConfig.from_hf(cfg_path)
    with ocp.PyTreeCheckpointer() as ckpt:
        tree = ckpt.restore(params_path)
    return config, unnest(tree)


def load_clip(clip_dir: str, rs: RSConfig = RSConfig(), image_size: Optional[int] = None,
              runtime: Runtime = Runtime(), *, seed: int = 0,
              adapters: Optional[Mapping[str, np.ndarray]] = None) -> CLIP:
    """A CLIP built from our converted folder; adapters (when `rs` is enabled) start at their init
    unless `adapters` (flat, our names) supplies them. `runtime`: see models.clip.Runtime."""
    config, flat = load_clip_params(clip_dir)
    if adapters:
        flat = {**flat, **adapters}
    model = CLIP(config, rs, image_size=image_size, runtime=runtime, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    assign_params(model, flat, source=clip_dir)
    return model
