"""Precision-recall curves of the demo: the micro-averaged curve and its PNG plot."""
from __future__ import annotations

import numpy as np

from sfr_jax.fileio import atomic_path


def pr_curve(scores, labels):
    """Micro-averaged precision/recall over all (image, class) pairs, for a PR plot."""
    s, y = np.asarray(scores).ravel(), np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(y[order])
    precision = tp / np.arange(1, len(s) + 1)
    recall = tp / max(1, y.sum())
    return precision, recall


def plot_pr(path: str, curves: dict, title: str, chance: float) -> str:
    """Write {label: (precision, recall)} as one PNG plot with a chance line, atomically."""
    import matplotlib  # lazy: only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for label, (precision, recall) in curves.items():
        ax.plot(recall, precision, label=label)
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({100 * chance:.1f}%)")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
