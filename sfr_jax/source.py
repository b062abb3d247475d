"""Where a trained model comes from, as a user names it: made once from the shared command-line options
(sfr_jax.cli.model_source) and handed to library code, which never sees an argparse namespace."""
from __future__ import annotations

import dataclasses
from typing import Optional

from sfr_jax.errors import InputError


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A workdir step (`workdir` with `step` or `best`, else its newest readable step) or a `checkpoint`
    file/folder (reference .pth, our export, an hf-layout folder, an .onnx). `bare_reference`,
    `tokenizer` and `descriptions` say how to read a .pth without sidecar; `classes` (a user's class file)
    and `mode` choose what is scored."""

    workdir: Optional[str] = None
    step: Optional[int] = None
    best: bool = False
    checkpoint: Optional[str] = None
    bare_reference: bool = False
    tokenizer: Optional[str] = None
    descriptions: Optional[str] = None
    classes: Optional[str] = None
    mode: Optional[str] = None

    def __post_init__(self):
        if bool(self.workdir) == bool(self.checkpoint):
            raise InputError("name one model: --workdir DIR or --checkpoint FILE")
        if self.checkpoint and (self.step is not None or self.best):
            raise InputError("--step / --best select a step of a --workdir; a --checkpoint has one model")
        if self.step is not None and self.best:
            raise InputError("--step and --best exclude each other")

    @property
    def is_onnx(self) -> bool:
        return bool(self.checkpoint) and self.checkpoint.lower().endswith(".onnx")

    def describe(self, opened_step: Optional[int] = None) -> str:
        """In words, for reports and logs: 'checkpoint run1.pth', 'workdir W, newest step 294' (with the step
        a newest/best resolved to, once the model is open), 'workdir W, step 7', then ', classes F'."""
        if self.checkpoint:
            words = f"checkpoint {self.checkpoint}"
        elif self.step is not None:
            words = f"workdir {self.workdir}, step {self.step}"
        else:
            which = "best step" if self.best else "newest step"
            words = f"workdir {self.workdir}, {which}" + (f" {opened_step}" if opened_step is not None else "")
        return words + (f", classes {self.classes}" if self.classes else "")
