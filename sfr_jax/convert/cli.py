"""`sfr-jax convert-clip`: pretrained CLIP weights (Hugging Face folder, OpenAI file) into our format."""
from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np

from sfr_jax import cli, options
from sfr_jax.convert import export
from sfr_jax.convert.hf import load_hf_clip
from sfr_jax.convert.openai import load_openai_clip
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.models.clip import interpolate_position_embedding
from sfr_jax.models.store import save_clip
from sfr_jax.text.tokenizer import ClipTokenizer

POSITION_KEY = "vision_model.embeddings.position_embedding.embedding"


def resize_image_size(config, flat, image_size: int):
    """Re-grid the vision position table for `image_size` (bicubic, class row kept) and update the config."""
    patch = config.vision.patch_size
    if image_size <= 0 or image_size % patch:
        raise InputError(f"--image-size {image_size} is not a positive multiple of the patch size {patch}")
    if image_size == config.vision.image_size:
        return config, flat
    grid = image_size // patch
    table = np.asarray(interpolate_position_embedding(flat[POSITION_KEY], grid, grid), np.float32)
    vision = dataclasses.replace(config.vision, image_size=image_size)
    return dataclasses.replace(config, vision=vision), {**flat, POSITION_KEY: table}


def read_any_clip(path: str, vision_heads=None, text_heads=None):
    """(config, flat CLIP params without adapters, tokenizer) from a HF folder or an OpenAI-format file."""
    if os.path.isdir(path):
        config, flat = load_hf_clip(path)
        has_tok = any(os.path.isfile(os.path.join(path, f)) for f in ("tokenizer.json", "vocab.json"))
        tokenizer = ClipTokenizer.from_pretrained(path) if has_tok else ClipTokenizer.default()
        return config, flat, tokenizer
    if os.path.isfile(path):
        config, flat, rest = load_openai_clip(path, vision_heads=vision_heads, text_heads=text_heads)
        dropped = [k for k in flat if ".adapter." in k]
        if dropped or rest:
            print(f"convert-clip: keeping the CLIP weights only; ignoring {len(dropped)} adapter and {len(rest)} "
                  f"other tensors (use `sfr-jax import` for a trained SFR-Net)", file=sys.stderr)
        flat = {k: v for k, v in flat.items() if ".adapter." not in k}
        return config, flat, ClipTokenizer.default()
    raise MissingInput(f"--from {path}: no such file or folder")


@cli.verb("sfr-jax convert-clip")
def convert_clip_main(argv) -> int:
    """Convert a HF CLIPModel folder or an OpenAI .pt / reference .pth into our Orbax CLIP folder."""
    ap = cli.parser("sfr-jax convert-clip", "Hugging Face / OpenAI CLIP weights -> our format")
    ap.add_argument("--from", dest="source", required=True,
                    help="Hugging Face CLIPModel folder, OpenAI .pt (TorchScript or state dict) or SFR-Net .pth")
    ap.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    ap.add_argument("--image-size", type=options.positive_int, default=None,
                    help="re-grid the position embeddings for this input size (default: the checkpoint's)")
    ap.add_argument("--vision-heads", type=options.positive_int, default=None, help="OpenAI files only (default: width // 64)")
    ap.add_argument("--text-heads", type=options.positive_int, default=None, help="OpenAI files only (default: width // 64)")
    cli.add_overwrite(ap)
    args = ap.parse_args(argv)
    export.check_new_outputs([args.out], args.overwrite, "--out")  # before the (long) read
    config, flat, tokenizer = read_any_clip(args.source, args.vision_heads, args.text_heads)
    if args.image_size:
        config, flat = resize_image_size(config, flat, args.image_size)
    out = save_clip(args.out, config, flat, tokenizer, overwrite=args.overwrite)
    v, t = config.vision, config.text
    print(f"wrote {out}: ViT {v.hidden_size}w x{v.num_hidden_layers} patch {v.patch_size} @ {v.image_size}px, "
          f"text {t.hidden_size}w x{t.num_hidden_layers}, embed {config.projection_dim}")
    return 0
