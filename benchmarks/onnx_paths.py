"""Which exporter: parity with the JAX model of the three ways to an ONNX graph, on one ViT-B/16-shaped model.

    python benchmarks/onnx_paths.py [--paths torchscript,dynamo,jax2onnx] [--batches 1,7,32]

torchscript: torch.onnx.export(dynamo=False) of torch_model.FixedClassNet, opset 17 (deprecated since torch 2.9);
dynamo: the same module through torch.export (what `sfr-jax export --format onnx` uses, onnx_export.to_onnx);
jax2onnx: the JAX model itself, traced from its jaxpr (not in our environment: its pins include an older
orbax-checkpoint than ours, so try it in a throwaway venv, e.g. `pip install --no-deps --target` jax2onnx,
equinox, jaxtyping, wadler_lindig, dm-pix over this venv's packages). Prints per path the export time, the file
size and the max |logit difference| to the JAX model per batch size. Not a test; see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_parity import CLIP_MEAN, CLIP_STD, uint8_images, vit_b16_loaded  # noqa: E402


def torchscript(loaded, baked) -> bytes:
    import torch

    from sfr_jax.convert import onnx_export

    f, axes = io.BytesIO(), {"images": {0: "batch"}, "logits": {0: "batch"}, "probabilities": {0: "batch"}}
    example = torch.zeros((1, loaded.image_size, loaded.image_size, 3), dtype=torch.uint8)
    torch.onnx.export(onnx_export.torch_graph(loaded, baked), (example,), f, input_names=["images"],
                      output_names=["logits", "probabilities"], dynamic_axes=axes, opset_version=17, dynamo=False)
    return f.getvalue()


def dynamo(loaded, baked) -> bytes:
    from sfr_jax.convert import onnx_export

    return onnx_export.to_onnx(onnx_export.torch_graph(loaded, baked), loaded.image_size).SerializeToString()


def jax2onnx(loaded, baked) -> bytes:
    import jax
    import jax.numpy as jnp
    from jax2onnx import to_onnx

    mean, std, text = jnp.float32(CLIP_MEAN), jnp.float32(CLIP_STD), jnp.asarray(baked.text_features)

    def forward(images):
        logits = loaded.model((images.astype(jnp.float32) / 255.0 - mean) / std, baked.ids, text_features=text)
        return logits, jax.nn.sigmoid(logits)

    s = loaded.image_size
    return to_onnx(forward, [jax.ShapeDtypeStruct(("B", s, s, 3), jnp.uint8)], opset=18, input_names=["images"],
                   output_names=["logits", "probabilities"]).SerializeToString()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", default="torchscript,dynamo,jax2onnx")
    ap.add_argument("--batches", default="1,7,32")
    args = ap.parse_args(argv)

    import onnxruntime

    from sfr_jax.convert import onnx_export

    loaded = vit_b16_loaded()
    baked = onnx_export.bake(loaded)
    reference = onnx_export.jax_reference(baked, CLIP_MEAN, CLIP_STD)
    batches = [int(b) for b in args.batches.split(",")]
    images = {b: uint8_images(b, loaded.image_size, seed=100 + b) for b in batches}
    want = {b: reference(x) for b, x in images.items()}
    exporters = {"torchscript": torchscript, "dynamo": dynamo, "jax2onnx": jax2onnx}
    for name in args.paths.split(","):
        t0 = time.perf_counter()
        try:
            blob = exporters[name](loaded, baked)
        except ImportError as error:
            print(f"{name}: not installed here ({error})")
            continue
        seconds = time.perf_counter() - t0
        session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
        diffs = [float(np.abs(session.run(["logits"], {"images": x})[0] - want[b]).max()) for b, x in images.items()]
        print(f"{name:<12} export {seconds:5.1f} s  {len(blob) / 1e6:6.1f} MB  max |logit diff| "
              + "  ".join(f"b{b} {d:.3g}" for b, d in zip(batches, diffs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
