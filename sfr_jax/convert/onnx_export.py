"""`sfr-jax export --format onnx`: one ONNX graph from uint8 images to the logits and probabilities of a fixed
class set, which onnxruntime (or OpenVINO, TensorRT) runs without JAX, torch or a tokenizer.

Graph (opset 18): input `images` uint8 [batch, S, S, 3] (RGB, NHWC, resized as sfr_jax.data.images does);
it normalises with the run's mean/std, runs the image tower with its adapters, then MEF and GR with the classes'
text features [c, E] and adjacency block [c, c] as constants; outputs `logits` [batch, c] and `probabilities`
= sigmoid(scale * logit + shift) [batch, c] with the calibration baked in (plain sigmoid when there is none);
with maps=True (`export --heatmaps`) a third output `maps` [batch, c, g, g], MEF's per-class softmax over the
g x g patches (the heatmaps predict and inspect draw), checked against the JAX model's like the logits.

Path: our weights -> torch_model.FixedClassNet -> torch.onnx's torch.export-based exporter. Exporting from JAX
with jax2onnx gave the same parity (benchmarks/README.md) but needs packages that pin an older orbax than ours,
and torch's TorchScript exporter is deprecated. The text features and the adjacency are computed by the JAX
model, and every export is checked against the JAX model on random images before anything is written.

The sidecar (same path, .json) names the classes (code, phrase, description, seen, threshold, scale, shift),
the input contract, the opset and the parity found; an `export_id` in both files pairs them, so that a graph
and a sidecar of different exports are never taken for one.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import uuid
from typing import Optional

import jax.numpy as jnp
import numpy as np
from flax import nnx

import sfr_jax
from sfr_jax.convert import export
from sfr_jax.convert.onnx_contract import (INPUT, MAPS, META_CODES, META_FORMAT, META_ID, OPSET, OUTPUTS,
                                           SIDECAR_FORMAT, read_class_file, sidecar_path)
from sfr_jax.errors import InputError, OutputError
from sfr_jax.eval.decisions import Decisions
from sfr_jax.fileio import atomic_write
from sfr_jax.infer.model import with_classes
from sfr_jax.text.classes import MODES, ClassSet

PARITY_TOLERANCE = 1e-4  # max |logit difference| to the JAX model accepted at export (fp32)
MAP_TOLERANCE = 1e-5  # max |heatmap difference| (softmax weights, about 1/patches each) accepted at export
VERIFY_BATCH = 3  # not the batch the graph is traced with, so the check also exercises the dynamic batch
TRACE_BATCH = 2  # torch.export specialises batches of 0 and 1


@dataclasses.dataclass
class Baked:
    """What an export fixes: the classes (in output order), their text features and adjacency block, the
    decisions, and a JAX model holding those classes (the reference the graph is checked against)."""

    model: object  # SFRNet holding `held` classes
    held: object  # the ClassSet the model holds (the model's own, or a user's file)
    class_set: object  # the exported classes only
    ids: tuple  # their indices in the model's class set
    text_features: np.ndarray  # [c, E], l2-normalised
    adjacency: Optional[np.ndarray]  # [c, c] block, None without GR
    decisions: Decisions
    mode: str


def decisions_for(decisions: Optional[Decisions], codes) -> Decisions:
    """`decisions` restricted to `codes`, in that order (a calibration of all classes serves a subset); the
    uncalibrated default when None."""
    codes = tuple(codes)
    if decisions is None:
        return Decisions.uncalibrated(codes)
    missing = [c for c in codes if c not in decisions.codes]
    if missing:
        raise InputError(f"the calibration has no values for the classes {' '.join(missing)} "
                         f"(it covers {' '.join(decisions.codes)}); calibrate this class set first")
    at = [decisions.codes.index(c) for c in codes]
    pick = lambda v: np.asarray(v, np.float64)[at]
    return Decisions(codes, pick(decisions.scale), pick(decisions.shift), pick(decisions.threshold),
                     decisions.source, None if decisions.confident is None else pick(decisions.confident))


def bake(loaded, *, classes: Optional[str] = None, mode: str = "gzsl",
         decisions: Optional[Decisions] = None, calibration: Optional[dict] = None) -> Baked:
    """The classes an export fixes: the model's own (or a user's class file, re-encoded), `mode`'s subset."""
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: expected {', '.join(MODES)}")
    model, class_set = loaded.model, loaded.class_set
    if classes:
        class_set = read_class_file(classes, loaded.tokenizer)
        model = with_classes(model, loaded.tokenizer, class_set)
    ids = tuple(class_set.ids(mode))
    if not ids:
        raise InputError(f"mode {mode!r} selects no class of {class_set.name!r} "
                         f"(seen: {len(class_set.seen_ids)}, unseen: {len(class_set.unseen_ids)})")
    subset = ClassSet(class_set.name, [class_set.classes[i] for i in ids])
    text = np.asarray(model.text_features(ids), np.float32)
    adjacency = (np.asarray(model.adjacency[...], np.float32)[np.ix_(ids, ids)]
                 if model.adjacency is not None else None)
    if calibration is not None:  # the model's calibration record; a user's classes follow its unseen rule
        decisions = Decisions.from_calibration(calibration, step=calibration["step"],
                                               class_set=calibration["class_set"]["digest"], scored=subset)
    return Baked(model, class_set, subset, ids, text, adjacency, decisions_for(decisions, subset.codes), mode)


def torch_graph(loaded, baked: Baked, maps: bool = False):
    """The torch module the graph is traced from (torch_model.FixedClassNet with our weights); maps=True adds
    the heatmaps output."""
    import torch  # lazy: only exports need it
    from sfr_jax.convert.torch_model import FixedClassNet, SFRNetTorch  # torch at its module level

    model = baked.model
    state = export.to_reference(export.regridded(model, export.model_flat(model)))
    side = export.make_sidecar(model, baked.held, layout="reference",
                               normalization=(loaded.mean, loaded.std))
    net = SFRNetTorch(side).eval()
    net.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}, strict=True)
    d = baked.decisions
    return FixedClassNet(net, baked.text_features, baked.adjacency, d.scale, d.shift, maps=maps).eval()


def to_onnx(graph, image_size: int):
    """Trace `graph` with torch.onnx's torch.export-based exporter: an onnx.ModelProto, dynamic batch (outputs
    OUTPUTS, and MAPS when the graph returns maps)."""
    import contextlib
    import io
    import logging
    import warnings

    import torch

    example = torch.zeros((TRACE_BATCH, image_size, image_size, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry.level
    registry.setLevel(logging.ERROR)  # it lists the torchvision ops it skips, which this graph never uses
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # the exporter narrates
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(graph, (example,), None, input_names=[INPUT], output_names=output_names(graph),
                                        dynamic_shapes={"images": {0: batch}}, opset_version=OPSET, dynamo=True)
    finally:
        registry.setLevel(level)
    return program.model_proto


def output_names(graph) -> list:
    """The graph's output names: OUTPUTS, then MAPS when it returns heatmaps."""
    return list(OUTPUTS) + ([MAPS] if getattr(graph, "maps", False) else [])


def jax_reference(baked: Baked, mean, std, maps: bool = False):
    """uint8 [B, S, S, 3] -> logits [B, c] of the JAX model on the exported classes (the graph's reference);
    maps=True: (logits, heatmaps [B, c, g, g])."""
    from sfr_jax.infer.steps import maps_to_grid

    ids, text = baked.ids, jnp.asarray(baked.text_features)
    if maps:
        forward = nnx.jit(lambda m, x, t: (lambda s, w: (s, maps_to_grid(w)))(
            *m(x, ids, text_features=t, with_maps=True)))
    else:
        forward = nnx.jit(lambda m, x, t: m(x, ids, text_features=t))
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def run(images):
        x = (np.asarray(images, np.float32) / np.float32(255.0) - mean) / std
        out = forward(baked.model, jnp.asarray(x), text)
        return tuple(np.asarray(o, np.float32) for o in out) if maps else np.asarray(out, np.float32)
    return run


def max_logit_difference(onnx_bytes: bytes, reference, image_size: int, batch: int = VERIFY_BATCH,
                         seed: int = 0) -> float:
    """Max |logits(onnxruntime) - reference| on `batch` random uint8 images (CPU provider)."""
    return max_differences(onnx_bytes, reference, image_size, batch, seed)[0]


def max_differences(onnx_bytes: bytes, reference, image_size: int, batch: int = VERIFY_BATCH, seed: int = 0,
                    maps: bool = False) -> tuple:
    """(max |logit difference|, max |map difference| or None) of onnxruntime against `reference` (a
    jax_reference with the same `maps`) on `batch` random uint8 images (CPU provider)."""
    import onnxruntime

    images = np.random.default_rng(seed).integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8)
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    if not maps:
        got = session.run([OUTPUTS[0]], {INPUT: images})[0]
        return float(np.max(np.abs(got - reference(images)))), None
    got, got_maps = session.run([OUTPUTS[0], MAPS], {INPUT: images})
    want, want_maps = reference(images)
    return float(np.max(np.abs(got - want))), float(np.max(np.abs(got_maps - want_maps)))


def make_sidecar(loaded, baked: Baked, onnx_file: str, export_id: str, parity: Optional[dict] = None,
                 provenance: Optional[dict] = None, maps_grid: Optional[int] = None) -> dict:
    """The JSON that goes with the graph: classes, decisions, input contract, opset, parity, provenance."""
    import onnxruntime
    import torch

    d, s = baked.decisions, int(loaded.image_size)
    classes = [{"code": c.code, "phrase": c.phrase, "description": c.description, "seen": bool(c.seen),
                "threshold": float(d.threshold[i]), "scale": float(d.scale[i]), "shift": float(d.shift[i]),
                **({"codes": dict(c.standard_codes)} if c.standard_codes else {})}
               for i, c in enumerate(baked.class_set.classes)]
    if d.tiered:  # null: this class is never confident
        for i, entry in enumerate(classes):
            entry["confident_threshold"] = float(d.confident[i]) if np.isfinite(d.confident[i]) else None
    return {
        "format": SIDECAR_FORMAT,
        "onnx": onnx_file,
        "export_id": export_id,
        "opset": OPSET,
        "input": {"name": INPUT, "dtype": "uint8", "shape": ["batch", s, s, 3], "layout": "NHWC", "color": "RGB",
                  "resize": f"to {s}x{s}, PIL bilinear (sfr_jax.data.images)",
                  "normalization_in_graph": {"mean": [float(v) for v in loaded.mean],
                                             "std": [float(v) for v in loaded.std]}},
        "outputs": {"logits": ["batch", len(classes)], "probabilities": ["batch", len(classes)],
                    **({MAPS: ["batch", len(classes), maps_grid, maps_grid]} if maps_grid else {})},
        "image_size": s,
        "mode": baked.mode,
        "class_set": baked.class_set.name,
        "classes": classes,
        "decisions": {"source": d.source, "calibrated": d.calibrated, "tiers": d.tier_note,
                      "rule": "probability = sigmoid(scale * logit + shift); a class fires at >= threshold; it is "
                              "'confident' at >= confident_threshold (when given), else 'review'"},
        "parity": parity,
        "provenance": {"exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "sfr_jax": sfr_jax.__version__, "exporter": f"torch.onnx (torch.export) {torch.__version__}",
                       "checked_with": f"onnxruntime {onnxruntime.__version__}", **(provenance or {})},
    }


def check_targets(path: str, overwrite: bool) -> tuple:
    """(graph path, sidecar path), absolute; OutputError unless PATH ends in .onnx and, without `overwrite`,
    neither file exists."""
    path = os.path.abspath(path)
    if not path.endswith(".onnx"):
        raise OutputError(f"--to {path}: an ONNX export is a file ending in .onnx")
    for target in (path, sidecar_path(path)):
        if os.path.exists(target) and not overwrite:
            raise OutputError(f"{target} exists; choose another --to or pass --overwrite")
    return path, sidecar_path(path)


def export_onnx(loaded, path: str, *, classes: Optional[str] = None, mode: str = "gzsl",
                decisions: Optional[Decisions] = None, calibration: Optional[dict] = None, overwrite: bool = False,
                verify: bool = True, provenance: Optional[dict] = None, maps: bool = False) -> tuple:
    """Write `loaded` (an import_reference.Loaded) as PATH.onnx + PATH.json for a fixed class set; returns both
    absolute paths. The graph is checked (onnx.checker, and against the JAX model unless verify=False) before
    either file is written; an existing one is replaced only with overwrite=True. maps=True adds the heatmaps
    output `maps`."""
    import onnx

    path, meta_path = check_targets(path, overwrite)
    baked = bake(loaded, classes=classes, mode=mode, decisions=decisions, calibration=calibration)
    proto = to_onnx(torch_graph(loaded, baked, maps), int(loaded.image_size))
    export_id = uuid.uuid4().hex
    onnx.helper.set_model_props(proto, {META_FORMAT: SIDECAR_FORMAT, META_ID: export_id,
                                        META_CODES: json.dumps(list(baked.class_set.codes))})
    proto.doc_string = (f"SFR-Net, {len(baked.class_set.codes)} classes ({baked.mode}); uint8 NHWC RGB images "
                        f"-> logits, probabilities{', maps' if maps else ''}; see {os.path.basename(meta_path)}")
    onnx.checker.check_model(proto, full_check=True)
    blob = proto.SerializeToString()
    parity = None
    if verify:
        size = int(loaded.image_size)
        if maps:
            diff, map_diff = max_differences(blob, jax_reference(baked, loaded.mean, loaded.std, maps=True), size,
                                             maps=True)
        else:
            diff, map_diff = max_logit_difference(blob, jax_reference(baked, loaded.mean, loaded.std), size), None
        if not diff <= PARITY_TOLERANCE:
            raise RuntimeError(f"the ONNX graph's logits differ from the JAX model's by {diff:.3g} "
                               f"(> {PARITY_TOLERANCE}); nothing was written")
        if maps and not map_diff <= MAP_TOLERANCE:
            raise RuntimeError(f"the ONNX graph's heatmaps differ from the JAX model's by {map_diff:.3g} "
                               f"(> {MAP_TOLERANCE}); nothing was written")
        parity = {"max_abs_logit_difference": diff, "images": VERIFY_BATCH, "tolerance": PARITY_TOLERANCE,
                  "reference": "the JAX SFRNet, fp32, CPU"}
        if maps:
            parity.update(max_abs_map_difference=map_diff, map_tolerance=MAP_TOLERANCE)
    grid = int(loaded.image_size) // baked.model.clip.config.vision.patch_size if maps else None
    side = json.dumps(make_sidecar(loaded, baked, os.path.basename(path), export_id, parity, provenance,
                                   maps_grid=grid), indent=1) + "\n"
    # The sidecar is renamed into place last: a sidecar names a complete graph, and export_id catches a pair
    # left mismatched by a crash between the two renames.
    with atomic_write(meta_path) as meta_file:
        with atomic_write(path, "wb") as graph_file:
            graph_file.write(blob)
        meta_file.write(side)
    return path, meta_path
