"""Fine-tuning (issue 21): a new run starts from a trained model's parameters instead of the initialisation.
The source is another run's workdir (its newest readable step) or an export, read by the one import path
(convert.import_reference.load_checkpoint): `sfr-jax export`'s .pth / .safetensors with its sidecar, its Hugging
Face layout folder, or a reference SFR-Net .pth without sidecar. Only the trainable parts come over (adapters,
MEF head, GCN); the optimiser, step and data position start afresh, so the schedule is the new config's, and
the GR graph is the run's own start-up graph (its class set may differ from the source's).

The CLIP stays frozen and is the run's (clip_dir). A source whose frozen CLIP differs from it is refused, not
merely warned about: the adapters, head and GCN were fitted to that CLIP's features, so on another CLIP they are
not the trained model the user means to continue, and a warning line scrolls past in a long run's log while
the run quietly trains something else. To continue on the source's own CLIP, `sfr-jax import` it and set
clip_dir to the imported WORKDIR/clip."""
from __future__ import annotations

import logging
import os

import jax
import numpy as np
from flax import nnx

from sfr_jax import parallel
from sfr_jax.convert import export, import_reference
from sfr_jax.convert.sidecar import sidecar_path
from sfr_jax.errors import CheckpointError, ConfigError, MissingInput, UserError
from sfr_jax.infer import restore
from sfr_jax.models.sfr import TRAINABLE
from sfr_jax.train.run import Run
from sfr_jax.workdir import Workdir

log = logging.getLogger("sfr_jax")

KEY = "config value train.init_from"
CLIP_TOLERANCE = 1e-4  # relative to the tensor's scale: float round trips of one CLIP pass; another CLIP does not


def _frozen_params(state) -> dict:
    """{dotted name: host array} of the nnx.Params in a frozen state (the CLIP's weights)."""
    return {".".join(str(p) for p in path): np.asarray(jax.device_get(var.get_value()))
            for path, var in nnx.to_flat_state(state) if isinstance(var, nnx.Param)}


def _from_workdir(source: str):
    try:
        other = restore.restore_step(source)  # the scoring restore: trainable state only, no optimiser
    except CheckpointError as error:
        raise MissingInput(f"{KEY}={source!r}: no readable checkpoint ({error})") from None
    return jax.device_get(other.trainable), other.parts.frozen, f"{source} step {other.step}"


def _from_export(run: Run, source: str):
    if source.lower().endswith(".onnx"):
        raise ConfigError(f"{KEY}={source!r}: an ONNX export scores images only; give the workdir or the .pth / "
                          ".safetensors export it was made from")
    bare = os.path.isfile(source) and not os.path.isfile(sidecar_path(source))
    # a bare reference .pth is read with the run's classes and tokenizer: only its trainable tensors are used
    extra = dict(class_set=run.config.data.class_set, descriptions=run.config.data.descriptions or None) if bare else {}
    try:
        loaded = import_reference.load_checkpoint(source, tokenizer=run.config.clip_dir, bare_reference=bare, **extra)
    except UserError as error:
        raise type(error)(f"{KEY}: {error}") from None
    model = loaded.model
    trainable = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model, TRAINABLE)))
    frozen = nnx.state(model, nnx.All(nnx.Param, nnx.Not(TRAINABLE)))
    return trainable, frozen, f"{source} ({'a reference checkpoint without sidecar' if bare else 'an export'})"


def _shapes(tree) -> dict:
    return {jax.tree_util.keystr(path): tuple(np.shape(leaf))
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _check_layout(ours, theirs, source: str) -> None:
    """The source's trainable parameters must be the run's, name for name and shape for shape."""
    a, b = _shapes(ours), _shapes(theirs)
    if a.keys() != b.keys():
        only_here, only_there = sorted(a.keys() - b.keys())[:3], sorted(b.keys() - a.keys())[:3]
        raise ConfigError(f"{KEY}={source!r}: its trainable parameters are laid out differently (another model.* "
                          f"configuration: only here {only_here}, only there {only_there}); fine-tune with the "
                          "same model settings")
    for name, shape in a.items():
        if b[name] != shape:
            raise ConfigError(f"{KEY}={source!r}: parameter {name} is {b[name]} there, {shape} here")


def _check_clip(run: Run, frozen, source: str) -> None:
    """The source's frozen CLIP must be the run's clip_dir CLIP (see the module docstring for why it is refused)."""
    ours, theirs = _frozen_params(run.parts.frozen), _frozen_params(frozen)
    hint = (f"the adapters, head and GCN were trained on that CLIP; fine-tune with its CLIP as clip_dir "
            f"(`sfr-jax import --from SOURCE --out W`, then clip_dir=W/clip), or on clip_dir={run.config.clip_dir!r} "
            "from a model trained on it")
    if ours.keys() != theirs.keys():
        raise ConfigError(f"{KEY}={source!r}: its frozen CLIP is another architecture than clip_dir's "
                          f"(tensors only here {sorted(ours.keys() - theirs.keys())[:3]}, only there "
                          f"{sorted(theirs.keys() - ours.keys())[:3]}); {hint}")
    for name, value in ours.items():
        other = theirs[name]
        if other.shape != value.shape:
            raise ConfigError(f"{KEY}={source!r}: its frozen CLIP differs from clip_dir's (CLIP tensor {name} is "
                              f"{tuple(other.shape)} there, {tuple(value.shape)} here); {hint}")
        difference = float(np.max(np.abs(other.astype(np.float64) - value), initial=0.0))
        if not difference <= CLIP_TOLERANCE * max(1.0, float(np.max(np.abs(value), initial=0.0))):
            raise ConfigError(f"{KEY}={source!r}: its frozen CLIP differs from clip_dir's (CLIP tensor {name}: "
                              f"max |difference| {difference:.3g}); {hint}")


def start_from(run: Run, source: str) -> str:
    """Replace `run`'s trainable parameters with those of `source` (a trained workdir or an export, see the module
    docstring); returns where they came from. ConfigError naming the first parameter whose name or shape differs
    (another model configuration) or the CLIP tensor that differs from clip_dir's."""
    source = os.path.abspath(source)
    if os.path.isfile(source) or os.path.isfile(os.path.join(source, export.HF_SIDECAR)):
        trainable, frozen, origin = _from_export(run, source)  # (an HF folder has a config.json too: the CLIP's)
    elif Workdir(source).has_config():
        trainable, frozen, origin = _from_workdir(source)
    else:
        raise MissingInput(f"{KEY}={source!r}: not a trained workdir (no config.json), an `sfr-jax export` file "
                           f"(.pth / .safetensors) or its Hugging Face folder (no {export.HF_SIDECAR})")
    _check_layout(run.trainable, trainable, source)
    _check_clip(run, frozen, source)
    trainable = jax.tree.map(lambda theirs, ours: np.asarray(theirs, ours.dtype), trainable, run.trainable)
    run.trainable = parallel.place(trainable, run.shardings["trainable"])
    log.info("fine-tuning: trainable parameters from %s", origin)
    return origin
