"""ZSL / GZSL mAP on the demo's cctv test split: the JAX model vs its fp32 ONNX export vs a dynamic-int8 copy.

    sfr-jax demo --out DEMO                      # once (a few minutes on a CPU); --no-ablation is enough
    python benchmarks/onnx_demo_map.py --demo DEMO

Loads DEMO/sfr (the trained demo workdir), exports it with `export_onnx` per mode, quantises each graph with
onnxruntime.quantization.quantize_dynamic (int8 MatMul weights), and scores the 900 raw test frames (read
with sfr_jax.data.images at the model's size) with all three. Prints mAP and max |logit diff| to JAX per
mode and the file sizes. Not a test; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def test_split(demo: str, class_set, size: int):
    """(uint8 images [N, S, S, 3], labels [N, C]) of the raw cctv test split."""
    from sfr_jax.data import images, raw

    source = {s.name: s for s in raw.find_sources("sewerml", os.path.join(demo, "raw", "cctv"))}["test"]
    rows = raw.read_split(source, class_set.codes)
    frames = np.stack([images.load(os.path.join(source.image_dir, name), size) for name in rows.filenames])
    return frames, np.asarray(rows.labels, np.int32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", required=True, help="the --out folder of `sfr-jax demo`")
    ap.add_argument("--out", default=None, help="folder for the .onnx files (default: a temporary one)")
    args = ap.parse_args(argv)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from sfr_jax.convert import onnx_export
    from sfr_jax.convert.import_reference import load_workdir
    from sfr_jax.serve.onnx import OnnxScorer
    from sfr_jax.eval.metrics import mean_average_precision
    from sfr_jax.text.classes import EVAL_MODES

    loaded = load_workdir(os.path.join(args.demo, "sfr"))
    frames, labels = test_split(args.demo, loaded.class_set, loaded.image_size)
    out = args.out or tempfile.mkdtemp(prefix="onnx-demo-")
    print(f"{len(frames)} test frames at {loaded.image_size} px; step {loaded.provenance['step']}")
    print("| mode | JAX mAP | ONNX fp32 mAP | max abs logit diff | ONNX int8 mAP | max abs logit diff | sizes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode in EVAL_MODES:
        path, meta = onnx_export.export_onnx(loaded, os.path.join(out, f"{mode}.onnx"), mode=mode, overwrite=True)
        int8 = os.path.join(out, f"{mode}.int8.onnx")
        quantize_dynamic(path, int8, weight_type=QuantType.QInt8)
        with open(meta) as f, open(onnx_export.sidecar_path(int8), "w") as g:
            g.write(f.read())  # quantize_dynamic keeps the graph's metadata, so the copied sidecar pairs with it
        baked = onnx_export.bake(loaded, mode=mode)
        want = np.concatenate([onnx_export.jax_reference(baked, loaded.mean, loaded.std)(frames[i:i + 100])
                               for i in range(0, len(frames), 100)])
        fp32, q8 = OnnxScorer(path).logits(frames), OnnxScorer(int8).logits(frames)
        y = labels[:, list(baked.ids)]
        m = lambda logits: 100 * mean_average_precision(logits, y)
        print(f"| {mode} | {m(want):.2f} | {m(fp32):.2f} | {np.abs(fp32 - want).max():.2g} | {m(q8):.2f} | "
              f"{np.abs(q8 - want).max():.2g} | {os.path.getsize(path) / 1e6:.2f} / "
              f"{os.path.getsize(int8) / 1e6:.2f} MB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
