"""Opening the model a user names on the command line (--workdir W [--step|--best] or --checkpoint FILE)
as a Scorer for a mode's classes or the user's own class file."""
from __future__ import annotations

from sfr_jax.convert.cli import load_model
from sfr_jax.errors import InputError
from sfr_jax.infer.model import use_classes
from sfr_jax.serve.scorer import JaxScorer
from sfr_jax.text.classes import ClassSetError, load_class_set


def open_scorer(args, mode: str = "gzsl", classes: str | None = None, batch_size: int = 16):
    """(a Scorer of the model named by args (see sfr_jax.cli.add_model_source) for `mode`'s classes, the
    loaded model); with `classes` (a user's class file) its classes are scored zero-shot."""
    loaded = load_model(args)
    if classes:
        try:
            class_set = load_class_set(classes, check_length=True, tokenizer=loaded.tokenizer)
        except ClassSetError as error:
            raise ClassSetError(f"invalid class file: {error}") from None
        use_classes(loaded, class_set)
    ids = loaded.class_set.ids(mode)
    if not ids:
        cs = loaded.class_set
        raise InputError(f"mode {mode!r} selects no class of {cs.name!r} (seen: {len(cs.seen_ids)}, unseen: "
                         f"{len(cs.unseen_ids)})")
    return JaxScorer(loaded, ids, batch_size), loaded
