"""Decisions from logits: a probability per class, the classes that fire, and Sewer-ML's "normal".

Every consumer of scores (predict, eval, inspect, the exports) goes through a `Decisions` object, so that
one rule turns logits into what a user acts on. Without a calibration the rule is the uncalibrated default:
probability = sigmoid(logit), a class fires at probability >= 0.5 (Sewer-ML's benchmark threshold), and
`source` says so, so callers can tell the user once.
"""
from __future__ import annotations

import dataclasses

import numpy as np

DEFAULT_THRESHOLD = 0.5
UNCALIBRATED = "uncalibrated: sigmoid(logit), threshold 0.5"


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow warnings for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclasses.dataclass(frozen=True)
class Decisions:
    """Per class (in `codes` order): probability = sigmoid(scale * logit + shift), fires at >= threshold.

    `scale`/`shift` hold a Platt fit (1 and 0: plain sigmoid); `threshold` is in probability space.
    """

    codes: tuple
    scale: np.ndarray
    shift: np.ndarray
    threshold: np.ndarray
    source: str = UNCALIBRATED

    @classmethod
    def uncalibrated(cls, codes) -> "Decisions":
        n = len(codes)
        return cls(tuple(codes), np.ones(n), np.zeros(n), np.full(n, DEFAULT_THRESHOLD))

    @property
    def calibrated(self) -> bool:
        return self.source != UNCALIBRATED

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
        """{'prob': [N, c] float, 'fired': [N, c] bool, 'normal': [N] bool (no class fires)}."""
        prob = self.probabilities(logits)
        fired = prob >= self.threshold[None]
        return {"prob": prob, "fired": fired, "normal": ~fired.any(axis=1)}

    def labels(self, logits) -> list:
        """The codes that fire, per image (class order)."""
        fired = self.apply(logits)["fired"]
        return [[code for code, on in zip(self.codes, row) if on] for row in fired]
