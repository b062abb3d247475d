"""The Scorer interface of predict and inspect, and its JAX backend.

A scorer has `codes` (the scored classes, in output order), `image_size`, `batch_size` (its preferred
batch), `decisions` (an sfr_jax.eval.decisions.Decisions for `codes`) and `logits(images)`: uint8
[B, S, S, 3] NHWC, any B, -> float32 [B, len(codes)] raw logits. A scorer with `has_maps` True also has
`logits_and_maps(images)` -> (logits, heatmaps float32 [B, c, g, g]: MEF's patch affinities, each map sums to 1).
`standards` (optional): code -> {standard: code in that inspection standard}, from the class file.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import jax
import numpy as np
from flax import nnx

from sfr_jax import parallel
from sfr_jax.eval.decisions import Decisions
from sfr_jax.infer import steps
from sfr_jax.infer.model import LoadedModel, ModelParts
from sfr_jax.models.sfr import TRAINABLE


class Scorer(Protocol):
    codes: tuple
    image_size: int
    batch_size: int
    decisions: Decisions

    def logits(self, images: np.ndarray) -> np.ndarray: ...


def pad_batches(images: np.ndarray, batch: int):
    """(chunks of exactly `batch` images, the last zero-padded, the number of real images in each)."""
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        n = len(chunk)
        if n < batch:  # one compiled shape for every batch
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        yield chunk, n


class JaxScorer:
    """A loaded SFR-Net run by the jitted eval step on every local device, text features computed once."""

    def __init__(self, loaded: LoadedModel, class_ids: Sequence[int], batch_size: int = 16,
                 decisions: Decisions | None = None):
        ids = tuple(int(i) for i in class_ids)
        self.codes = tuple(loaded.class_set.codes[i] for i in ids)
        self.standards = {loaded.class_set.classes[i].code: dict(loaded.class_set.classes[i].standard_codes)
                          for i in ids}  # each class's codes in inspection standards (the class file's `codes`)
        self.image_size = int(loaded.image_size)
        self.provenance = dict(loaded.provenance)  # where the model came from (workdir, step, ...)
        mesh = parallel.make_mesh(devices=jax.local_devices())
        n = mesh.shape["data"]
        self.batch_size = -(-int(batch_size) // n) * n  # a multiple of the devices
        self.decisions = decisions or Decisions.uncalibrated(self.codes)
        graphdef, trainable, frozen = nnx.split(loaded.model, TRAINABLE, ...)
        parts = ModelParts(None, graphdef, trainable, frozen, loaded.class_set, loaded.tokenizer, None)
        rep = parallel.replicated(mesh)
        shardings = {"trainable": jax.tree.map(lambda _: rep, trainable), "frozen": jax.tree.map(lambda _: rep, frozen)}
        self._trainable = parallel.place(trainable, shardings["trainable"])
        self._frozen = parallel.place(frozen, shardings["frozen"])
        text = steps.make_text_features(parts, mesh, shardings)(self._trainable, self._frozen, ids)
        self._text = {"scores": text}
        self._step = steps.make_eval_step(parts, mesh, shardings, {"scores": ids}, loaded.mean, loaded.std)
        self._mesh = mesh
        self._maps_step = None  # built on first use: scoring without maps compiles and runs only _step
        self._make_maps_step = lambda: steps.make_maps_step(parts, mesh, shardings, ids, loaded.mean, loaded.std)

    has_maps = True

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected uint8 [B, {self.image_size}, {self.image_size}, 3], got {images.dtype} "
                             f"{images.shape}")
        return images

    def logits_and_maps(self, images: np.ndarray) -> tuple:
        """(logits float32 [B, c], heatmaps float32 [B, c, g, g]) of uint8 [B, S, S, 3] images."""
        images = self._check(images)
        if self._maps_step is None:
            self._maps_step = self._make_maps_step()
        logits, maps = [], []
        for chunk, n in pad_batches(images, self.batch_size):
            batch = parallel.host_to_global({"image": chunk}, self._mesh)["image"]
            got = self._maps_step(self._trainable, self._frozen, batch, self._text["scores"])
            logits.append(parallel.to_host(got[0])[:n])
            maps.append(parallel.to_host(got[1])[:n])
        if not logits:
            raise ValueError("no images to score")
        return np.concatenate(logits).astype(np.float32), np.concatenate(maps).astype(np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        images = self._check(images)
        out = []
        for chunk, n in pad_batches(images, self.batch_size):
            batch = parallel.host_to_global({"image": chunk}, self._mesh)["image"]
            logits = self._step(self._trainable, self._frozen, batch, self._text)["scores"]
            out.append(parallel.to_host(logits)[:n])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(self.codes)), np.float32)
