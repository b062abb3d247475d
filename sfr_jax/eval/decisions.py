"""Decisions from logits: a probability per class, the classes that fire, and Sewer-ML's "normal".

Every consumer of scores (predict, eval, inspect, the exports) goes through a `Decisions` object, so that
one rule turns logits into what a user acts on. Without a calibration the rule is the uncalibrated default:
probability = sigmoid(logit), a class fires at probability >= 0.5 (Sewer-ML's benchmark threshold), and
`source` says so, so callers can tell the user once. With a calibration record (`sfr-jax calibrate`,
sfr_jax.eval.calibration_record) the probabilities are Platt maps and the thresholds the fitted ones.

Tiers (issue 21): a class that fires is `confident` at or above its precision-oriented threshold and
`review` between the two thresholds; below, it does not fire (tier ""). Without a calibration, or with a
record older than the tiers, there is one tier: everything that fires is `review`, and `source` says so.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from sfr_jax.eval import calibration_record
from sfr_jax.eval.metrics import sigmoid

DEFAULT_THRESHOLD = 0.5
UNCALIBRATED = "uncalibrated: sigmoid(logit), threshold 0.5"
CONFIDENT, REVIEW = "confident", "review"
ONE_TIER = "one tier (no precision-oriented threshold): every class that fires is 'review'"


@dataclasses.dataclass(frozen=True)
class Decisions:
    """Per class (in `codes` order): probability = sigmoid(scale * logit + shift), fires at >= threshold.

    `scale`/`shift` hold a Platt fit (1 and 0: plain sigmoid); `threshold` is in probability space.
    `confident` [c] the confident tier's thresholds (probability; inf: never confident), None: one tier.
    """

    codes: tuple
    scale: np.ndarray
    shift: np.ndarray
    threshold: np.ndarray
    source: str = UNCALIBRATED
    confident: np.ndarray | None = None

    @classmethod
    def uncalibrated(cls, codes) -> "Decisions":
        n = len(codes)
        return cls(tuple(codes), np.ones(n), np.zeros(n), np.full(n, DEFAULT_THRESHOLD))

    @classmethod
    def from_calibration(cls, record, *, step: int, class_set, scored=None,
                         unlabelled_logits=None) -> "Decisions":
        """Decisions from a calibration record (a dict, or the path of a calibration file).

        `step` and `class_set` (the model's ClassSet, or its calibration_record.class_set_digest) name the
        model: a record made for another step or class set is refused with an InputError naming both.
        `scored` lists the classes to decide on (a ClassSet, e.g. a user's --classes, or codes; default:
        class_set). Classes the record lacks follow the unseen rule, with z-statistics from
        `unlabelled_logits` [M, len(scored)] when M >= calibration_record.MIN_STAT_IMAGES, else the global
        rule; `source` names them.
        """
        origin = record if isinstance(record, str) else "calibration record"
        if isinstance(record, str):
            record = calibration_record.read_record(record)
        else:
            record = calibration_record.validate_record(record)
        calibration_record.check_record(record, step=step, class_set=class_set, origin=origin)
        if scored is None:
            if isinstance(class_set, str):
                raise ValueError("give `scored` (the classes to decide on) when class_set is a digest")
            scored = class_set
        codes, scale, shift, threshold, confident, notes = calibration_record.decision_arrays(
            record, scored, unlabelled_logits)
        source = (f"calibrated: {origin} (step {record['step']}, split {record['split']['name']}, objective "
                  f"{record['objective']}, unseen classes: {record['unseen_rule']} rule)")
        if confident is None:
            notes = notes + [ONE_TIER + " (a calibration older than the tiers; run `sfr-jax calibrate` again)"]
        else:
            notes = notes + [f"tiers: 'confident' at precision >= {record['confident_precision']:g} on the split, "
                             "'review' between the two thresholds"]
        return cls(codes, scale, shift, threshold, "; ".join([source] + notes), confident)

    @classmethod
    def for_step(cls, workdir: str, step: int, class_set, *, scored=None,
                 unlabelled_logits=None) -> "Decisions":
        """The calibration <workdir>/calibration/<step>.json when it exists (see from_calibration), else the
        uncalibrated default for the scored classes."""
        path = calibration_record.record_path(workdir, step)
        if os.path.exists(path):
            return cls.from_calibration(path, step=step, class_set=class_set, scored=scored,
                                        unlabelled_logits=unlabelled_logits)
        scored = class_set if scored is None else scored
        return cls.uncalibrated(scored.codes if hasattr(scored, "codes") else tuple(scored))

    @property
    def calibrated(self) -> bool:
        return self.source != UNCALIBRATED

    @property
    def tiered(self) -> bool:
        """Whether there are two tiers (a calibration with a precision-oriented threshold)."""
        return self.confident is not None

    @property
    def tier_note(self) -> str:
        """One line on the tiers, for the tools to say once."""
        return "tiers: 'confident' and 'review'" if self.tiered else ONE_TIER

    def tiers(self, prob, fired=None) -> np.ndarray:
        """[N, c] 'confident', 'review' or '' (does not fire) of [N, c] probabilities."""
        prob = np.asarray(prob, dtype=np.float64)
        fired = prob >= self.threshold[None] if fired is None else np.asarray(fired, dtype=bool)
        out = np.where(fired, REVIEW, "").astype(object)
        if self.tiered:
            out[fired & (prob >= np.asarray(self.confident, dtype=np.float64)[None])] = CONFIDENT
        return out

    def _check(self, logits) -> np.ndarray:
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim != 2 or logits.shape[1] != len(self.codes):
            raise ValueError(f"logits of shape {logits.shape} do not fit the {len(self.codes)} classes "
                             f"{' '.join(self.codes)}")
        return logits

    def probabilities(self, logits) -> np.ndarray:
        """[N, c] probabilities of [N, c] logits."""
        logits = self._check(logits)
        return sigmoid(logits * self.scale[None] + self.shift[None])

    def apply(self, logits) -> dict:
        """{'prob': [N, c] float, 'fired': [N, c] bool, 'normal': [N] bool (no class fires),
        'tier': [N, c] 'confident' / 'review' / ''}."""
        prob = self.probabilities(logits)
        fired = prob >= self.threshold[None]
        return {"prob": prob, "fired": fired, "normal": ~fired.any(axis=1), "tier": self.tiers(prob, fired)}

    def labels(self, logits) -> list:
        """The codes that fire, per image (class order)."""
        fired = self.apply(logits)["fired"]
        return [[code for code, on in zip(self.codes, row) if on] for row in fired]
