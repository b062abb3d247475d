"""Images/s of the eval path on CPU, side by side in one run: JAX, onnxruntime and our torch module (+ int8).

    python benchmarks/onnx_speed.py [--batches 1,32] [--rounds 3] [--steps 1:10,32:2] [--no-int8]

One ViT-B/16-shaped random SFR-Net (224 px, 17 classes, GZSL), uint8 NHWC images in, logits out, for every
backend: the JAX model under jax.jit with the text features computed once (normalisation inside the jitted
function, as the eval step does); the ONNX graph of `sfr-jax export --format onnx` in onnxruntime (CPU
provider); the torch module that graph is traced from (torch_model.FixedClassNet, inference mode); and, unless
--no-int8, the same graph with dynamic int8 quantisation of its MatMul weights (onnxruntime.quantization).
Per round every backend runs --steps calls per batch size in turn; a figure is the median over rounds of each
round's median call. Not a test: see benchmarks/README.md for the method and the latest numbers.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_parity import CLIP_MEAN, CLIP_STD, uint8_images, vit_b16_loaded  # noqa: E402


def jax_backend(loaded, ids):
    """uint8 images -> logits with the JAX model: one jitted function, text features as an argument."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    graphdef, state = nnx.split(loaded.model)
    text = loaded.model.text_features(ids)
    mean, std = jnp.float32(CLIP_MEAN), jnp.float32(CLIP_STD)

    @jax.jit
    def forward(state, images, text):
        x = (images.astype(jnp.float32) / 255.0 - mean) / std
        return nnx.merge(graphdef, state)(x, ids, text_features=text)

    return lambda images: np.asarray(forward(state, jnp.asarray(images), text))


def onnx_backend(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda images: session.run(["logits"], {"images": images})[0]


def torch_backend(graph):
    import torch

    def run(images):
        with torch.inference_mode():
            return graph(torch.from_numpy(images))[0].numpy()
    return run


def quantised(path: str) -> str:
    """The graph with dynamic int8 MatMul weights (activations quantised per call), beside `path`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.replace(".onnx", ".int8.onnx")
    quantize_dynamic(path, out, weight_type=QuantType.QInt8)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", default="1:10,32:2", help="timed calls per round, per batch size")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--out", default=None, help="folder for the .onnx files (default: a temporary one)")
    args = ap.parse_args(argv)

    import onnxruntime
    import torch

    from sfr_jax.convert import onnx_export

    batches = [int(b) for b in args.batches.split(",")]
    steps = {int(k): int(v) for k, v in (kv.split(":") for kv in args.steps.split(","))}
    print(f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}, onnxruntime {onnxruntime.__version__}, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}", flush=True)
    loaded = vit_b16_loaded()
    out = args.out or tempfile.mkdtemp(prefix="onnx-speed-")
    path, _ = onnx_export.export_onnx(loaded, os.path.join(out, "model.onnx"), overwrite=True)
    baked = onnx_export.bake(loaded)
    backends = {"JAX (jit)": jax_backend(loaded, baked.ids), "onnxruntime": onnx_backend(path),
                "torch module": torch_backend(onnx_export.torch_graph(loaded, baked))}
    if not args.no_int8:
        int8 = quantised(path)
        backends["onnxruntime int8"] = onnx_backend(int8)
        print(f"int8 graph: {os.path.getsize(int8) / 1e6:.1f} MB (fp32 {os.path.getsize(path) / 1e6:.1f} MB)")

    images = {b: uint8_images(b, loaded.image_size, seed=b) for b in batches}
    reference = {b: backends["JAX (jit)"](x) for b, x in images.items()}  # also the JAX warm-up (compiles)
    for name, run in backends.items():
        diff = max(float(np.abs(run(x) - reference[b]).max()) for b, x in images.items())
        print(f"{name:<17} max |logit - JAX| {diff:.3g}", flush=True)

    times = {(name, b): [] for name in backends for b in batches}  # per round: median seconds per call
    for r in range(args.rounds):
        for b in batches:
            for name, run in backends.items():
                calls = []
                for _ in range(steps.get(b, 3)):
                    t0 = time.perf_counter()
                    run(images[b])
                    calls.append(time.perf_counter() - t0)
                times[name, b].append(statistics.median(calls))
        print(f"round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)

    print("\nimages/s (median over rounds; min-max of the rounds' medians); speed vs JAX = median of the rounds' "
          "ratios")
    print("| backend | " + " | ".join(f"batch {b} | vs JAX" for b in batches) + " |")
    print("| --- |" + " --- | --- |" * len(batches))
    for name in backends:
        cells = []
        for b in batches:
            rate = [b / t for t in times[name, b]]
            ratio = [j / t for j, t in zip(times["JAX (jit)", b], times[name, b])]
            cells.append(f"{statistics.median(rate):.2f} ({min(rate):.2f}-{max(rate):.2f}) | "
                         f"{statistics.median(ratio):.2f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
