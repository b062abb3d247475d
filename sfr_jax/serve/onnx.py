"""Run an `sfr-jax export --format onnx` graph with onnxruntime: the Scorer of predict and inspect for .onnx files.

    scorer = OnnxScorer("model.onnx")            # reads model.json too; CUDA when onnxruntime has it, else CPU
    logits = scorer.logits(images)               # uint8 [B, S, S, 3] RGB -> float32 [B, c], classes scorer.codes
    scorer.decisions.apply(logits)               # the baked calibration (or the uncalibrated default)

Without sfr_jax, the graph needs only onnxruntime and numpy:
    onnxruntime.InferenceSession("model.onnx").run(None, {"images": images})  # -> [logits, probabilities]
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np

from sfr_jax import records
from sfr_jax.convert.onnx_contract import (INPUT, MAPS, META_CODES, META_ID, OUTPUTS, SIDECAR_FORMAT,
                                           read_class_file, sidecar_path)
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval.decisions import UNCALIBRATED, Decisions

DEFAULT_BATCH = 16
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers() -> list:
    """CUDA first when this onnxruntime has it (onnxruntime-gpu), then CPU."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [CUDA, CPU] if CUDA in available else [CPU]


def read_sidecar(path: str) -> dict:
    """The sidecar of an ONNX export, checked against records.ONNX_SIDECAR; refused (InputError, naming the
    file and the key) when missing, not ours or damaged."""
    meta = sidecar_path(path)
    if not os.path.isfile(meta):
        raise InputError(f"{path} has no sidecar {meta}: it is not an `sfr-jax export --format onnx` graph "
                         "(the sidecar names its classes and input contract); export it with sfr-jax")
    return records.read(meta, records.ONNX_SIDECAR, "it is not the sidecar `sfr-jax export --format onnx` wrote; "
                        "export again", fmt=SIDECAR_FORMAT, what="sidecar")


def decisions_from_sidecar(side: dict) -> Decisions:
    """The baked decision rule: per-class scale, shift, threshold and (a sidecar with tiers) the confident
    threshold, with its source; a sidecar older than the tiers gives one tier."""
    classes = side["classes"]
    codes = tuple(c["code"] for c in classes)
    source = side.get("decisions", {}).get("source", UNCALIBRATED)
    if source == UNCALIBRATED:
        return Decisions.uncalibrated(codes)
    column = lambda key: np.asarray([float(c[key]) for c in classes])
    confident = None
    if classes and all("confident_threshold" in c for c in classes):
        confident = np.asarray([np.inf if c["confident_threshold"] is None else float(c["confident_threshold"])
                                for c in classes])
    return Decisions(codes, column("scale"), column("shift"), column("threshold"), source, confident)


def _check_graph(path: str, session, side: dict) -> None:
    """Refuse a sidecar that does not describe this graph: another export, other classes, other input."""
    meta = sidecar_path(path)
    props = session.get_modelmeta().custom_metadata_map
    if props.get(META_ID) != side.get("export_id"):
        raise InputError(f"{meta} describes another export than {path} (export ids {side.get('export_id')} vs "
                         f"{props.get(META_ID)}); export again to write the pair together")
    codes = [c["code"] for c in side["classes"]]
    if props.get(META_CODES) is not None and json.loads(props[META_CODES]) != codes:
        raise InputError(f"{meta} lists the classes {' '.join(codes)} but {path} was exported for "
                         f"{' '.join(json.loads(props[META_CODES]))}")
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    s = int(side["image_size"])
    image = inputs.get(INPUT)
    if image is None or image.type != "tensor(uint8)" or list(image.shape[1:]) != [s, s, 3]:
        raise InputError(f"{path}: its input is not `{INPUT}` uint8 [batch, {s}, {s}, 3] as {meta} says")
    for name in OUTPUTS:
        if name not in outputs or outputs[name].shape[-1] != len(codes):
            raise InputError(f"{path}: no output `{name}` [batch, {len(codes)}] as {meta} says")


class OnnxScorer:
    """The Scorer protocol over an ONNX export: codes, image_size, batch_size, decisions, logits(images)."""

    def __init__(self, path: str, *, batch_size: int = DEFAULT_BATCH,
                 execution_providers: Optional[Sequence[str]] = None):
        import onnxruntime

        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise MissingInput(f"ONNX model {path}: no such file")
        side = read_sidecar(path)
        try:
            self.session = onnxruntime.InferenceSession(path, providers=list(execution_providers or providers()))
        except Exception as error:  # onnxruntime raises its own types for unreadable or invalid graphs
            raise InputError(f"{path}: onnxruntime cannot load it ({type(error).__name__}: {error})") from None
        _check_graph(path, self.session, side)
        self.path, self.sidecar = path, side
        self.codes = tuple(c["code"] for c in side["classes"])
        self.image_size = int(side["image_size"])
        self.batch_size = int(batch_size)
        self.decisions = decisions_from_sidecar(side)
        self.mode = side.get("mode", "gzsl")
        self.has_maps = MAPS in {o.name for o in self.session.get_outputs()}  # exported with --heatmaps
        self.standards = {c["code"]: dict(c.get("codes") or {}) for c in side["classes"]}  # inspection codes

    @property
    def providers(self) -> list:
        return self.session.get_providers()

    def run(self, images) -> tuple:
        """(logits, probabilities) float32 [B, c] of uint8 [B, S, S, 3] images, in chunks of batch_size."""
        images = np.asarray(images)
        s = self.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (s, s, 3):
            raise InputError(f"{self.path} takes uint8 images [B, {s}, {s}, 3]; got {images.dtype} "
                             f"{list(images.shape)}")
        if not len(images):
            empty = np.zeros((0, len(self.codes)), np.float32)
            return empty, empty.copy()
        parts = [self.session.run(list(OUTPUTS), {INPUT: images[i:i + self.batch_size]})
                 for i in range(0, len(images), self.batch_size)]
        return tuple(np.concatenate([p[k] for p in parts]).astype(np.float32) for k in range(len(OUTPUTS)))

    def logits(self, images) -> np.ndarray:
        """Raw logits float32 [B, c] (classes in `codes` order) of uint8 [B, S, S, 3] RGB images."""
        return self.run(images)[0]

    def logits_and_maps(self, images) -> tuple:
        """(logits [B, c], heatmaps [B, c, g, g]) float32 of a graph exported with --heatmaps."""
        if not self.has_maps:
            raise InputError(f"{self.path} was exported without heatmaps; export it again with --heatmaps")
        images = np.asarray(images)
        if not len(images):
            raise InputError("no images to score")
        self.run(images[:0])  # the input checks of run()
        parts = [self.session.run([OUTPUTS[0], MAPS], {INPUT: images[i:i + self.batch_size]})
                 for i in range(0, len(images), self.batch_size)]
        return tuple(np.concatenate([p[k] for p in parts]).astype(np.float32) for k in range(2))


def check_classes(scorer: OnnxScorer, path: str, mode: Optional[str] = None) -> None:
    """Refuse a --classes file whose classes (of `mode`, default the export's) are not the ones baked into
    the graph, naming both; the same codes with other phrases or descriptions are refused too."""
    class_set = read_class_file(path)
    mode = mode or scorer.mode
    wanted = [class_set.classes[i] for i in class_set.ids(mode)]
    baked = {c["code"]: c for c in scorer.sidecar["classes"]}
    codes = [c.code for c in wanted]
    if sorted(codes) != sorted(baked):
        raise InputError(f"--classes {path}: its classes ({mode}) {' '.join(codes) or '(none)'} differ from the "
                         f"ones baked into {scorer.path}: {' '.join(scorer.codes)}; export the graph again with "
                         f"--classes {path}")
    changed = [c.code for c in wanted
               if (c.phrase, c.description) != (baked[c.code]["phrase"], baked[c.code]["description"])]
    if changed:
        raise InputError(f"--classes {path}: the phrases or descriptions of {' '.join(changed)} differ from the "
                         f"ones baked into {scorer.path}; export the graph again with --classes {path}")
