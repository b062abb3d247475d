"""Trained SFR-Nets in and out of workdirs: load a saved step of a training workdir, load a PyTorch checkpoint
(the reference's .pth, our reference-layout export with its sidecar, or our Hugging Face layout folder), and
turn such a checkpoint into a workdir that `eval`, `predict --workdir`, `export --workdir` and `train` accept.

An imported workdir is a training workdir at step 0 (see sfr_jax/train/loop.py): WORKDIR/clip (the frozen
CLIP, our format), WORKDIR/classes.yaml, WORKDIR/config.json, WORKDIR/checkpoints/0 (adapters, head, GCN, GR
adjacency, a fresh optimiser state). Its meta leaves steps_per_epoch open, so fine-tuning on any data works.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

import numpy as np

from sfr_jax.fileio import atomic_directory

ADJACENCY_CHOICES = ("current", "frozen")


@dataclasses.dataclass
class Loaded:
    """A ready-to-run SFR-Net (eval mode) and what goes with it."""

    model: Any  # SFRNet
    class_set: Any
    tokenizer: Any
    image_size: int
    mean: tuple
    std: tuple
    provenance: dict


# ---------------------------------------------------------------- building an SFRNet from flat params

def build_model(clip_config, sfr_config, flat: Mapping[str, np.ndarray], class_tokens, adjacency=None, *,
                image_size: Optional[int] = None, source: str = "checkpoint"):
    """An SFRNet (eval mode) holding exactly `flat`; adjacency None with GR on gives a placeholder to refresh."""
    from flax import nnx

    from sfr_jax.convert.store import assign_params
    from sfr_jax.models.clip import CLIP
    from sfr_jax.models.sfr import SFRNet

    c = int(np.shape(class_tokens)[0])
    clip = CLIP(clip_config, sfr_config.rs, image_size=image_size, rngs=nnx.Rngs(0))
    placeholder = np.eye(c, dtype=np.float32) if sfr_config.use_gr and adjacency is None else adjacency
    model = SFRNet(clip, sfr_config, class_tokens, placeholder, rngs=nnx.Rngs(1))
    assign_params(model, flat, allow_missing=None, source=source)
    model.eval()
    return model


def frozen_adjacency(model, phrase_tokens):
    """A_hat computed with the adapters switched off (up-projections zeroed): the graph the reference trains with."""
    from flax import nnx

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


def _tokenizer(path: Optional[str]):
    from sfr_jax.text.tokenizer import ClipTokenizer

    if not path:
        return ClipTokenizer.default()
    if os.path.isdir(path):
        return ClipTokenizer.from_pretrained(path)
    if path.endswith(".gz"):
        return ClipTokenizer.from_bpe_gz(path)
    raise FileNotFoundError(f"--tokenizer {path}: expected a folder with tokenizer files or a bpe .txt.gz file")


# ---------------------------------------------------------------- PyTorch checkpoints -> Loaded

def load_checkpoint(path: str, *, tokenizer: Optional[str] = None, class_set: Optional[str] = None,
                    descriptions: Optional[str] = None, adjacency: str = "current") -> Loaded:
    """A reference .pth (no sidecar: Sewer-ML classes unless `class_set`; the GR graph computed as `adjacency`
    says), an export with its sidecar (everything from the sidecar), or an HF-layout export folder."""
    from sfr_jax.convert import export
    from sfr_jax.convert.torch_model import sidecar_path
    from sfr_jax.models.clip import CLIPConfig
    from sfr_jax.text.classes import class_set_from_dict, load_class_set

    if adjacency not in ADJACENCY_CHOICES and not str(adjacency).endswith(".npy"):
        raise ValueError(f"adjacency must be one of {ADJACENCY_CHOICES} or a .npy file, got {adjacency!r}")
    tok = _tokenizer(tokenizer)
    side = None
    if os.path.isdir(path):
        meta = os.path.join(path, export.HF_SIDECAR)
        if not os.path.isfile(meta):
            raise FileNotFoundError(f"{path} is a folder without {export.HF_SIDECAR}: not an `sfr-jax export "
                                    "--layout hf` folder")
        from safetensors.numpy import load_file

        from sfr_jax.convert.hf import hf_to_ours, read_hf_state
        with open(meta) as f:
            side = json.load(f)
        flat = {f"clip.{k}": v for k, v in hf_to_ours(read_hf_state(path)).items()}
        flat.update(export.hf_extras_to_ours(load_file(os.path.join(path, export.EXTRAS_FILE))))
        clip_config = CLIPConfig.from_hf(side["model"]["clip"])
        if not tokenizer and any(os.path.isfile(os.path.join(path, f)) for f in ("tokenizer.json", "vocab.json")):
            tok = _tokenizer(path)
    elif os.path.isfile(path):
        state = _read_state(path)
        meta = sidecar_path(path)
        if os.path.isfile(meta):
            with open(meta) as f:
                side = json.load(f)
        clip_config = CLIPConfig.from_hf(side["model"]["clip"]) if side else None
        clip_config, flat = export.from_reference(state, config=clip_config, source=path)
    else:
        raise FileNotFoundError(f"checkpoint {path}: no such file or folder")

    if side is not None:
        sfr_config = export.sfr_config_from_dict(side["model"])
        classes = class_set_from_dict({"name": side.get("class_set", "exported"), "classes": side["classes"]},
                                      side.get("class_set", "exported"), f"{path} sidecar")
        tokens = np.asarray(side["class_tokens"], np.int32)
        adj = np.asarray(side["adjacency"], np.float32) if side.get("adjacency") is not None else None
        image_size = int(side.get("image_size", clip_config.vision.image_size))
        norm = side.get("normalization", {})
        mean, std = tuple(norm.get("mean", (0.5,) * 3)), tuple(norm.get("std", (0.5,) * 3))
        provenance = dict(side.get("provenance", {}), source=os.path.abspath(path))
        if descriptions or class_set:
            raise ValueError(f"{path} has a sidecar that fixes the classes; use predict --classes to score others")
        model = build_model(clip_config, sfr_config, flat, tokens, adj, image_size=image_size, source=path)
        return Loaded(model, classes, tok, image_size, mean, std, provenance)

    sfr_config = export.sfr_config_from_flat(flat, clip_config)
    classes = load_class_set(class_set or "sewerml", descriptions=descriptions, check_length=True, tokenizer=tok)
    tokens = tok.encode(list(classes.descriptions))
    model = build_model(clip_config, sfr_config, flat, tokens, None, source=path)
    if sfr_config.use_gr:
        phrases = tok.encode(list(classes.phrases))
        if adjacency == "current":
            adj = np.asarray(model.compute_adjacency(phrases))
        elif adjacency == "frozen":
            adj = frozen_adjacency(model, phrases)
        else:  # e.g. the matrix the reference printed / `ref_sfr.py adjacency` saved
            if not os.path.isfile(adjacency):
                raise FileNotFoundError(f"adjacency file {adjacency} not found")
            adj = np.load(adjacency)
            if adj.shape != (classes.num_classes,) * 2:
                raise ValueError(f"{adjacency}: shape {adj.shape}, expected {(classes.num_classes,) * 2}")
        model.adjacency.set_value(np.asarray(adj, np.float32))
    return Loaded(model, classes, tok, clip_config.vision.image_size, (0.5,) * 3, (0.5,) * 3,
                  {"source": os.path.abspath(path), "adjacency": adjacency})


def _read_state(path: str) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        return dict(load_file(path))
    from sfr_jax.convert.openai import read_torch_state
    return read_torch_state(path)


# ---------------------------------------------------------------- workdirs

def _workdir_config(workdir: str):
    from sfr_jax.train import config as config_lib

    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a training workdir (sfr-jax train / import)?")
    with open(path) as f:
        return config_lib.from_json(f.read())


def load_workdir(workdir: str, step: Optional[int] = None, best: bool = False) -> Loaded:
    """The model of a saved step (default: the newest readable one; `best`: by train.best_metric)."""
    from sfr_jax.train import checkpoint as ckpt_lib
    from sfr_jax.train import loop

    workdir = os.path.abspath(workdir)
    config = _workdir_config(workdir)
    manager = ckpt_lib.Checkpoints(workdir, config.train.keep_checkpoints, config.train.best_metric,
                                   read_only=True)
    try:
        if best:
            step = manager.best_step()
            if step is None:
                raise ckpt_lib.CheckpointError(f"no checkpoint in {manager.directory} has the metric "
                                               f"{config.train.best_metric!r}")
        meta_step = step if step is not None else manager.latest_step()
        if meta_step is None:
            raise ckpt_lib.CheckpointError(f"no checkpoint in {manager.directory}")
        meta = manager.read_meta(meta_step)
        _fit_batch_to_devices(config)
        run = loop.setup(config, workdir, restore=False, spe=meta.get("steps_per_epoch") or 1)
        meta = loop.restore_into(run, step, manager=manager)
    finally:
        manager.close()
    model = run.parts.merge(run.trainable, run.frozen)
    model.eval()
    provenance = {"workdir": workdir, "step": run.step, "metrics": meta.get("metrics"), "run": config.name}
    return Loaded(model, run.parts.class_set, run.parts.tokenizer, int(config.data.image_size),
                  tuple(config.data.mean), tuple(config.data.std), provenance)


def _fit_batch_to_devices(config) -> None:
    """Loading a model does not train: let any device count hold it (training's batch may not divide it)."""
    import jax

    with config.unlocked():
        config.train.global_batch = jax.device_count() * jax.process_count()
        config.loss.group_size = 0


def _pure_paths(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _pure_paths(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _set_pure(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def write_workdir(loaded: Loaded, workdir: str, *, data_dir: Optional[str] = None, overwrite: bool = False,
                  source: str = "") -> str:
    """Write `loaded` as a training workdir at step 0 (see the module docstring); atomic at the folder level."""
    import jax

    from sfr_jax.convert.store import flat_params, save_clip
    from sfr_jax.train import checkpoint as ckpt_lib
    from sfr_jax.train import config as config_lib
    from sfr_jax.train import loop, steps

    workdir = os.path.abspath(workdir)
    if os.path.exists(workdir):
        if not overwrite:
            raise FileExistsError(f"{workdir} exists; choose another --out or pass --overwrite")
    model, sfr = loaded.model, loaded.model.config
    with atomic_directory(workdir) as tmp:
        flat = flat_params(model)
        clip_flat = {k[len("clip."):]: np.asarray(v, np.float32) for k, v in flat.items()
                     if k.startswith("clip.") and ".adapter." not in k}
        clip_config = model.clip.config
        save_clip(os.path.join(tmp, "clip"), clip_config, clip_flat, loaded.tokenizer)
        loaded.class_set.save(os.path.join(tmp, "classes.yaml"))

        config = config_lib.base_config()
        config.name = f"imported-{os.path.splitext(os.path.basename(source or 'checkpoint'))[0]}"
        config.clip_dir = os.path.join(workdir, "clip")
        config.data.class_set = os.path.join(workdir, "classes.yaml")
        config.data.image_size = int(loaded.image_size)
        config.data.mean, config.data.std = tuple(loaded.mean), tuple(loaded.std)
        if data_dir:
            config.data.dir = os.path.abspath(data_dir)
        m = config.model
        m.rs, m.bottleneck_dim = bool(sfr.rs.enabled), int(sfr.rs.bottleneck_dim)
        m.rs_dropout = float(sfr.rs.dropout)
        m.rs_layers = ",".join(str(i) for i in sfr.rs.layers) if sfr.rs.layers is not None else ""
        m.use_local, m.use_gr = bool(sfr.use_local), bool(sfr.use_gr)
        m.head_hidden, m.head_dropout = int(sfr.head_hidden), float(sfr.head_dropout)
        m.gcn_hidden, m.gcn_dropout = int(sfr.gcn_hidden), float(sfr.gcn_dropout)
        m.adjacency_threshold = float(sfr.adjacency_threshold)
        if sfr.head_blocks != 2:
            raise ValueError(f"the training config has no switch for {sfr.head_blocks} head blocks (only 2)")
        with open(os.path.join(tmp, "config.json"), "w") as f:
            f.write(config_lib.to_json(config))

        # Build the run exactly as training does (from the files just written), then put our values in.
        build_config = config_lib.from_json(config_lib.to_json(config))
        build_config.clip_dir = os.path.join(tmp, "clip")
        build_config.data.class_set = os.path.join(tmp, "classes.yaml")
        _fit_batch_to_devices(build_config)
        run = loop.setup(build_config, tmp, restore=False, spe=1)
        trainable = jax.tree.map(np.asarray, run.trainable)
        missing = []
        for path, value in _pure_paths(trainable):
            name = ".".join(str(p) for p in path)
            if name not in flat:
                missing.append(name)
                continue
            if tuple(np.shape(flat[name])) != tuple(np.shape(value)):
                raise ValueError(f"{name}: checkpoint shape {np.shape(flat[name])} != model shape {np.shape(value)}")
            _set_pure(trainable, path, np.asarray(flat[name], value.dtype))
        if missing:
            raise ValueError(f"the imported model lacks trainable tensors {missing[:6]}")
        run.trainable = steps.place(trainable, run.shardings["trainable"])
        if model.adjacency is not None:
            from sfr_jax.train import state as state_lib
            state_lib.set_adjacency(run.frozen, np.asarray(model.adjacency[...], np.float32))
        tree = loop._ckpt_tree(run)
        meta = loop._meta(run)
        meta.update(steps_per_epoch=None, total_steps=None, clip_dir=config.clip_dir,
                    config=config_lib.to_json(config), imported_from=os.path.abspath(source) if source else "",
                    provenance=loaded.provenance)
        manager = ckpt_lib.Checkpoints(tmp, config.train.keep_checkpoints, config.train.best_metric,
                                       async_save=False)
        manager.save(0, tree, meta)
        manager.close()
    return workdir
