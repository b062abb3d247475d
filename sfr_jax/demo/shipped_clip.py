"""Seed 0's tiny CLIP, shipped with sfr_jax: the result of the demo's default pre-training recipe, so that
`make demo` does not spend most of its minutes re-deriving it. tests/test_shipped_clip.py runs the recipe
from scratch and checks that it gives these weights; another recipe (another seed, size or step count)
is pre-trained by the demo as before.

    python -m sfr_jax.demo.shipped_clip    # a maintainer's rewrite, after a change to the recipe's code

It runs as `sfr-jax demo` does: one CPU device, no XLA flags (XLA's CPU thread pool is split by the device
count, and with it the order of float sums: 8 devices give other bytes).

The folder holds the Hugging Face CLIPModel files (config.json, model.safetensors; the tokenizer is
OpenAI's, from open_clip) and recipe.json: the Recipe, the final loss, the weights' SHA-256 and the CPU
they were trained on (on another CPU the recipe gives the same model up to float rounding, which 1000
steps amplify: the test checks bytes on the same CPU, the model's figures on another).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from typing import Optional

from flax import nnx

from sfr_jax.convert.hf import load_hf_clip
from sfr_jax.demo import pretrain as dp
from sfr_jax.fileio import atomic_directory, write_json
from sfr_jax.models.clip import CLIP
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.store import assign_params

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_clip")
RECIPE_FILE, WEIGHTS = "recipe.json", "model.safetensors"
DEFAULT = dp.Recipe(web_images=4000, web_seed=1000, draw_size=96, val_fraction=0.1, caption_seed=0, image_size=64,
                    steps=1000, seed=0, jitter=True)  # `make demo`'s: sfr-jax demo with its defaults


def cpu_signature() -> str:
    """The CPU model and a digest of its feature flags: XLA's CPU code, and so the last bits of 1000 training
    steps, depend on them (the vector instructions it may use)."""
    found = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                found.setdefault(key.strip(), value.strip())  # the first CPU's
    except OSError:
        pass
    model, flags = found.get("model name") or platform.processor() or platform.machine(), found.get("flags", "")
    return f"{model} (flags {hashlib.sha256(flags.encode()).hexdigest()[:12]})"


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def find(recipe: dp.Recipe, folder: str = FOLDER) -> Optional[dict]:
    """recipe.json's contents when `folder` holds the weights of exactly `recipe` (and they are the bytes
    recorded), else None."""
    try:
        with open(os.path.join(folder, RECIPE_FILE), encoding="utf-8") as handle:
            shipped = json.load(handle)
        if shipped["recipe"] != recipe.as_dict() or sha256(os.path.join(folder, WEIGHTS)) != shipped["sha256"]:
            return None
    except (OSError, ValueError, KeyError):
        return None
    return shipped


def load(folder: str = FOLDER) -> CLIP:
    """The shipped tiny CLIP as our module (no adapters), read by the converter real weights go through."""
    config, flat = load_hf_clip(folder)
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(0))
    assign_params(model, flat, source=folder)
    return model


def reproduce(recipe: dp.Recipe, work: str, log=None):
    """(model, final loss): `recipe` run from nothing: its web set drawn under `work`, then pre-training."""
    from sfr_jax.text.classes import load_class_set
    from sfr_jax.text.tokenizer import ClipTokenizer

    dp.write_web_set_of(work, recipe)
    return dp.train_tiny_clip(work, recipe, load_class_set("sewerml"), ClipTokenizer.default(), log=log)


def write(model, recipe: dp.Recipe, loss: float, folder: str = FOLDER) -> str:
    """Ship `model` as the result of `recipe` (HF files + recipe.json), atomically."""
    from sfr_jax.text.tokenizer import ClipTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        hf = dp.save_hf_clip(model, os.path.join(tmp, "hf"), ClipTokenizer.default())
        with atomic_directory(folder) as out:
            for name in ("config.json", WEIGHTS):
                os.replace(os.path.join(hf, name), os.path.join(out, name))
            write_json(os.path.join(out, RECIPE_FILE), {"recipe": recipe.as_dict(), "loss": loss,
                                                        "sha256": sha256(os.path.join(out, WEIGHTS)),
                                                        "cpu": cpu_signature()}, indent=2)
    return folder


def main(argv=None) -> int:
    """Run the default recipe from nothing and ship the result (or write it to --out)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sfr_jax.demo.shipped_clip", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=FOLDER, help="where the result goes (default: the shipped folder)")
    ap.add_argument("--work", default=None, help="where the web set is drawn (default: a temporary folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model, loss = reproduce(DEFAULT, args.work or tmp, log=print)
    print("written ->", write(model, DEFAULT, loss, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
