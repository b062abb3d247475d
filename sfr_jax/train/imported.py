"""A trained model written as a workdir (`sfr-jax import`): a training workdir at step 0 that `eval`,
`predict --workdir`, `export --workdir` and `train` (to fine-tune) accept.

WORKDIR/clip (the frozen CLIP, our format), WORKDIR/classes.yaml, WORKDIR/config.json, WORKDIR/checkpoints/0
(adapters, head, GCN, GR adjacency, a fresh optimiser state). Its meta leaves steps_per_epoch open, so
fine-tuning on any data works.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

import jax
import numpy as np

from sfr_jax import config as config_lib
from sfr_jax import parallel
from sfr_jax.checkpoints import Checkpoints
from sfr_jax.errors import InputError, OutputError
from sfr_jax.fileio import atomic_directory, write_text
from sfr_jax.infer import model as model_lib
from sfr_jax.infer.model import LoadedModel
from sfr_jax.models.store import flat_params, save_clip
from sfr_jax.train.run import checkpoint_meta, checkpoint_tree, setup
from sfr_jax.workdir import Workdir


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


def _run_config(loaded: LoadedModel, workdir: str, data_dir: Optional[str], source: str):
    """The run config of an imported workdir: the base recipe with the model's switches and sizes."""
    sfr = loaded.model.config
    if sfr.head_blocks != 2:
        raise InputError(f"the training config has no switch for {sfr.head_blocks} head blocks (only 2)")
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
    return config


def write_workdir(loaded: LoadedModel, workdir: str, *, data_dir: Optional[str] = None, overwrite: bool = False,
                  source: str = "") -> str:
    """Write `loaded` as a training workdir at step 0 (see the module docstring); atomic at the folder level."""
    workdir = os.path.abspath(workdir)
    if os.path.exists(workdir) and not overwrite:
        raise OutputError(f"{workdir} exists; choose another --out or pass --overwrite")
    model = loaded.model
    config = _run_config(loaded, workdir, data_dir, source)
    with atomic_directory(workdir) as tmp:
        flat = flat_params(model)
        clip_flat = {k[len("clip."):]: np.asarray(v, np.float32) for k, v in flat.items()
                     if k.startswith("clip.") and ".adapter." not in k}
        save_clip(os.path.join(tmp, "clip"), model.clip.config, clip_flat, loaded.tokenizer)
        loaded.class_set.save(os.path.join(tmp, "classes.yaml"))
        write_text(Workdir(tmp).config_file, config_lib.to_json(config))

        # Build the run exactly as training does (from the files just written), then put our values in.
        build_config = config_lib.from_json(config_lib.to_json(config))
        build_config.clip_dir = os.path.join(tmp, "clip")
        build_config.data.class_set = os.path.join(tmp, "classes.yaml")
        with build_config.unlocked():  # a run that never trains: any device count will hold it
            build_config.train.global_batch = jax.device_count()
            build_config.loss.group_size = 0
        run = setup(build_config, tmp, restore=False, spe=1)
        trainable = jax.tree.map(np.asarray, run.trainable)
        missing = []
        for path, value in _pure_paths(trainable):
            name = ".".join(str(p) for p in path)
            if name not in flat:
                missing.append(name)
                continue
            if tuple(np.shape(flat[name])) != tuple(np.shape(value)):
                raise InputError(f"{name}: checkpoint shape {np.shape(flat[name])} != model shape {np.shape(value)}")
            _set_pure(trainable, path, np.asarray(flat[name], value.dtype))
        if missing:
            raise InputError(f"the imported model lacks trainable tensors {missing[:6]}")
        run.trainable = parallel.place(trainable, run.shardings["trainable"])
        if model.adjacency is not None:
            model_lib.set_adjacency(run.frozen, np.asarray(model.adjacency[...], np.float32))
        meta = checkpoint_meta(run)
        meta.update(steps_per_epoch=None, total_steps=None, clip_dir=config.clip_dir,
                    config=config_lib.to_json(config), imported_from=os.path.abspath(source) if source else "",
                    provenance=loaded.provenance)
        manager = Checkpoints(tmp, config.train.keep_checkpoints, config.train.best_metric,
                                       async_save=False)
        manager.save(0, checkpoint_tree(run), meta)
        manager.close()
    return workdir
