"""Opening the model a user names on the command line (--workdir W [--step|--best] or --checkpoint FILE)
as a Scorer for a mode's classes or the user's own class file, with the decisions of its calibration."""
from __future__ import annotations

from sfr_jax.convert.cli import load_model
from sfr_jax.convert.onnx_runtime import OnnxScorer, check_classes
from sfr_jax.errors import InputError
from sfr_jax.eval.decisions import Decisions
from sfr_jax.infer.model import LoadedModel, use_classes
from sfr_jax.serve.scorer import JaxScorer
from sfr_jax.text.classes import ClassSet, ClassSetError, load_class_set


def decisions_for(loaded: LoadedModel, scored: ClassSet) -> Decisions:
    """The decisions for `scored` classes: the model's calibration (checked against its step and class set
    when it was loaded) or the uncalibrated default. Classes the calibration lacks (a user's own) follow
    its unseen-class rule (see Decisions.from_calibration)."""
    record = loaded.calibration
    if record is None:
        return Decisions.uncalibrated(scored.codes)
    return Decisions.from_calibration(record, step=record["step"], class_set=record["class_set"]["digest"],
                                      scored=scored)


def open_onnx(path: str, mode: str | None, classes: str | None, batch_size: int):
    """The onnxruntime backend of an ONNX export: its classes are baked in, so a mode or a class file must
    name exactly those."""
    scorer = OnnxScorer(path, batch_size=batch_size)
    if mode is not None and mode != scorer.mode:
        raise InputError(f"{path} was exported for mode {scorer.mode!r} ({' '.join(scorer.codes)}), not {mode!r}; "
                         f"export it again with --mode {mode}")
    if classes:
        check_classes(scorer, classes, scorer.mode)
    return scorer, scorer.sidecar.get("class_set", "onnx export")


def open_scorer(args, mode: str | None = "gzsl", classes: str | None = None, batch_size: int = 16):
    """(a Scorer of the model named by args (see sfr_jax.cli.add_model_source) for `mode`'s classes (None:
    all of them, or those an ONNX export holds), the name of its class set); with `classes` (a user's class
    file) its classes are scored zero-shot."""
    if getattr(args, "checkpoint", None) and args.checkpoint.endswith(".onnx"):
        return open_onnx(args.checkpoint, mode, classes, batch_size)
    mode = mode or "gzsl"
    loaded = load_model(args)
    if classes:
        try:
            class_set = load_class_set(classes, check_length=True, tokenizer=loaded.tokenizer)
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
