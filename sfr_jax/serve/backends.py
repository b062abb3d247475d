"""Opening the model a ModelSource names (a workdir step, an exported .pth / hf folder, an .onnx) as a
LoadedModel or as a Scorer for a mode's classes or the user's own class file, with the decisions of its
calibration. Nothing here imports train/ (a contract in setup.cfg): scoring builds no training run."""
from __future__ import annotations

import os
import sys

from sfr_jax.convert import import_reference
from sfr_jax.errors import InputError
from sfr_jax.eval import calibration_record
from sfr_jax.eval.decisions import Decisions
from sfr_jax.infer import restore
from sfr_jax.infer.model import LoadedModel, use_classes
from sfr_jax.serve.onnx import OnnxScorer, check_classes
from sfr_jax.serve.scorer import JaxScorer
from sfr_jax.source import ModelSource
from sfr_jax.text.classes import ClassSet, ClassSetError, load_class_set
from sfr_jax.workdir import Workdir


def step_calibration(workdir: Workdir, step: int, class_set) -> dict | None:
    """The calibration record of a step (`sfr-jax calibrate`), checked against the step and class set, or
    None when the step has none."""
    path = workdir.calibration_file(step)
    if not os.path.isfile(path):
        return None
    record = calibration_record.read_record(path)
    calibration_record.check_record(record, step=step, class_set=class_set, origin=path)
    return record


def open_model(source: ModelSource) -> LoadedModel:
    """The model of a workdir step or of a PyTorch checkpoint (not an .onnx: see open_scorer), eval mode."""
    if source.is_onnx:
        raise InputError(f"{source.checkpoint} is an ONNX graph: it can be scored (predict / inspect "
                         "--checkpoint), not opened as a model for export or import")
    if source.checkpoint:
        loaded = import_reference.load_checkpoint(source.checkpoint, tokenizer=source.tokenizer,
                                                  descriptions=source.descriptions,
                                                  bare_reference=source.bare_reference)
        if loaded.provenance.get("read_as") == "bare reference":
            print(f"note: {source.checkpoint} read as a bare reference checkpoint (no sidecar): "
                  f"{loaded.class_set.name} classes", file=sys.stderr)
        return loaded
    restored = restore.restore_step(source.workdir, source.step, source.best)
    record = step_calibration(restored.workdir, restored.step, restored.parts.class_set)
    return restore.loaded_model(restored, record)


def decisions_for(loaded: LoadedModel, scored: ClassSet) -> Decisions:
    """The decisions for `scored` classes: the model's calibration (checked against its step and class set
    when it was loaded) or the uncalibrated default. Classes the calibration lacks (a user's own) follow
    its unseen-class rule (see Decisions.from_calibration)."""
    record = loaded.calibration
    if record is None:
        return Decisions.uncalibrated(scored.codes)
    return Decisions.from_calibration(record, step=record["step"], class_set=record["class_set"]["digest"],
                                      scored=scored)


def open_onnx(source: ModelSource, batch_size: int):
    """The onnxruntime backend of an ONNX export: its classes are baked in, so a mode or a class file must
    name exactly those."""
    path, mode = source.checkpoint, source.mode
    scorer = OnnxScorer(path, batch_size=batch_size)
    if mode is not None and mode != scorer.mode:
        raise InputError(f"{path} was exported for mode {scorer.mode!r} ({' '.join(scorer.codes)}), not {mode!r}; "
                         f"export it again with --mode {mode}")
    if source.classes:
        check_classes(scorer, source.classes, scorer.mode)
    return scorer, scorer.sidecar.get("class_set", "onnx export")


def open_scorer(source: ModelSource, batch_size: int = 16):
    """(a Scorer of the model `source` names, for `source.mode`'s classes (None: all of them, or those an
    ONNX export holds), the name of its class set); with `source.classes` (a user's class file) its
    classes are scored zero-shot."""
    if source.is_onnx:
        return open_onnx(source, batch_size)
    mode = source.mode or "gzsl"
    loaded = open_model(source)
    if source.classes:
        try:
            class_set = load_class_set(source.classes, check_length=True, tokenizer=loaded.tokenizer)
        except ClassSetError as error:
            raise ClassSetError(f"invalid class file: {error}") from None
        use_classes(loaded, class_set)
    cs = loaded.class_set
    ids = cs.ids(mode)
    if not ids:
        raise InputError(f"mode {mode!r} selects no class of {cs.name!r} (seen: {len(cs.seen_ids)}, unseen: "
                         f"{len(cs.unseen_ids)})")
    scored = ClassSet(cs.name, [cs.classes[i] for i in ids])
    return JaxScorer(loaded, ids, batch_size, decisions_for(loaded, scored)), cs.name
