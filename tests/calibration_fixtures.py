"""Synthetic validation logits for the calibration tests: Sewer-ML's 17 classes, rarer unseen ones, and
positives shifted up by `separation` noise units."""
import numpy as np

from sfr_jax.text.classes import sewerml


def synthetic(n: int, seed: int, separation: float):
    """(class set, logits [n, 17], labels [n, 17] int64, file names)."""
    class_set = sewerml()
    rng = np.random.default_rng(seed)
    labels = rng.random((n, 17)) < np.r_[rng.uniform(0.05, 0.3, 12), rng.uniform(0.03, 0.1, 5)]
    logits = rng.normal(-2, 1.5, 17) + rng.uniform(0.5, 2, 17) * (rng.normal(size=(n, 17)) + separation * labels)
    return class_set, logits, labels.astype(np.int64), [f"{i:08d}.png" for i in range(n)]
