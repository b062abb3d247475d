"""Parity of the ONNX export with the JAX model on a ViT-B/16-shaped random SFR-Net (224 px, 17 classes).

    python benchmarks/onnx_parity.py [--batches 1,7,32] [--out DIR]

Exports with `sfr_jax.convert.onnx_export.export_onnx` (the code `sfr-jax export --format onnx` runs), then
prints per batch size the max |logit difference| between onnxruntime (CPU) and the JAX model on the same
uint8 images, the max |probability difference|, and the file size. Not a test: it prints figures (see
benchmarks/README.md). The random weights are drawn by tests/export_fixtures.py, every one non-trivial.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def vit_b16_loaded(seed: int = 5):
    """An import_reference.Loaded of a random ViT-B/16 SFR-Net (adapters everywhere, the reference's head)."""
    from export_fixtures import random_sfr
    from sfr_jax.convert.import_reference import Loaded
    from sfr_jax.models.clip import CLIPConfig
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.models.sfr import SFRConfig
    from sfr_jax.text.tokenizer import ClipTokenizer

    model, classes = random_sfr(CLIPConfig.vit_b16(), SFRConfig(rs=RSConfig(bottleneck_dim=128)), n_seen=12,
                                n_unseen=5, seed=seed)
    return Loaded(model, classes, ClipTokenizer.default(), model.clip.image_size, CLIP_MEAN, CLIP_STD, {})


def uint8_images(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,7,32")
    ap.add_argument("--out", default=None, help="folder for model.onnx (default: a temporary one)")
    args = ap.parse_args(argv)

    import onnxruntime

    from export_fixtures import jax_logits
    from sfr_jax.convert.onnx_export import export_onnx

    loaded = vit_b16_loaded()
    out = args.out or tempfile.mkdtemp(prefix="onnx-parity-")
    t0 = time.perf_counter()
    path, _ = export_onnx(loaded, os.path.join(out, "model.onnx"), overwrite=True)
    print(f"export (trace, onnx.checker, check vs JAX, write): {time.perf_counter() - t0:.1f} s")
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB ({os.path.getsize(path) / 2**20:.1f} MiB)")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    size, mean, std = loaded.image_size, np.float32(CLIP_MEAN), np.float32(CLIP_STD)
    print(f"{'batch':>5}  {'max |logit diff|':>16}  {'max |prob diff|':>15}  {'max |logit|':>11}")
    for b in (int(v) for v in args.batches.split(",")):
        images = uint8_images(b, size, seed=100 + b)
        want = jax_logits(loaded.model, loaded.class_set, (images.astype(np.float32) / 255 - mean) / std,
                          ("gzsl",))["gzsl"]
        logits, prob = session.run(None, {"images": images})
        print(f"{b:>5}  {np.abs(logits - want).max():>16.3g}  {np.abs(prob - 1 / (1 + np.exp(-want))).max():>15.3g}"
              f"  {np.abs(want).max():>11.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
