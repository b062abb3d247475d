"""`sfr-jax convert-clip`, `sfr-jax export` and `sfr-jax import`: CLIP weights in, trained models out and in."""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import numpy as np

from sfr_jax import cli
from sfr_jax.convert import export
from sfr_jax.convert import import_reference as imp
from sfr_jax.convert import onnx_export
from sfr_jax.convert.hf import load_hf_clip
from sfr_jax.convert.openai import load_openai_clip
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.infer.model import LoadedModel
from sfr_jax.models.clip import interpolate_position_embedding
from sfr_jax.models.store import save_clip
from sfr_jax.text.tokenizer import ClipTokenizer
from sfr_jax.train import workdir as workdir_lib

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
    ap.add_argument("--image-size", type=cli.positive_int, default=None,
                    help="re-grid the position embeddings for this input size (default: the checkpoint's)")
    ap.add_argument("--vision-heads", type=cli.positive_int, default=None, help="OpenAI files only (default: width // 64)")
    ap.add_argument("--text-heads", type=cli.positive_int, default=None, help="OpenAI files only (default: width // 64)")
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


def add_checkpoint_options(ap) -> None:
    """Options that say how to read a checkpoint without a sidecar (the reference's own .pth files)."""
    ap.add_argument("--bare-reference", action="store_true",
                    help="read a .pth without sidecar as a reference SFR-Net checkpoint (Sewer-ML classes, our "
                         "descriptions unless --descriptions, OpenAI's vocabulary unless --tokenizer)")
    ap.add_argument("--tokenizer", default=None, help="with --bare-reference: tokenizer folder or bpe .txt.gz")
    ap.add_argument("--descriptions", default=None, help="with --bare-reference: one description per line")


def load_model(args) -> LoadedModel:
    """The model named by --workdir [--step/--best] or --checkpoint [--bare-reference ...]."""
    if getattr(args, "checkpoint", None):
        if args.step is not None or args.best:
            raise InputError("--step / --best select a step of a --workdir; a --checkpoint has one model")
        loaded = imp.load_checkpoint(args.checkpoint, tokenizer=args.tokenizer, descriptions=args.descriptions,
                                     bare_reference=args.bare_reference)
        if loaded.provenance.get("read_as") == "bare reference":
            print(f"note: {args.checkpoint} read as a bare reference checkpoint (no sidecar): "
                  f"{loaded.class_set.name} classes", file=sys.stderr)
        return loaded
    return workdir_lib.load_model(args.workdir, step=args.step, best=args.best)


def refuse_onnx(path, option: str) -> None:
    """An .onnx export holds a fixed graph for scoring, not the weights that export and import read: say what
    it is good for instead of complaining about its sidecar."""
    if path and str(path).lower().endswith(".onnx"):
        instead = ("the .pth / .safetensors checkpoint" if option == "--from" else
                   "the workdir (--workdir) or the .pth / .safetensors export")
        raise InputError(f"{option} {path}: an ONNX export scores images only (`sfr-jax predict --checkpoint "
                         f"{path}` or `sfr-jax inspect --checkpoint {path}`); give {instead} it was made from")


@cli.verb("sfr-jax export")
def export_main(argv) -> int:
    """`sfr-jax export`: a saved step -> PyTorch, in the reference SFR-Net's layout or Hugging Face's."""
    ap = cli.parser(
        "sfr-jax export",
        "Write a trained SFR-Net for PyTorch. reference layout: one state_dict that the reference "
        "SFR-Net loads with strict=True (and sfr_jax/convert/torch_model.py runs), plus FILE.json. "
        "hf layout: a folder with a transformers CLIPModel, sfr_extras.safetensors (adapters, head, "
        "GCN), sfr.json, classes.yaml and the tokenizer.")
    cli.add_model_source(ap)
    ap.add_argument("--to", required=True, help="FILE.pth | FILE.safetensors (reference layout) or a folder (hf)")
    ap.add_argument("--layout", choices=("reference", "hf"), default="reference")
    ap.add_argument("--recompute-adjacency", action="store_true",
                    help="store GR's adjacency recomputed with the trained text encoder (the reference's evaluation)")
    ap.add_argument("--format", choices=("pytorch", "onnx"), default="pytorch",
                    help="onnx: one graph FILE.onnx (+ FILE.json) from uint8 images to logits and probabilities "
                         "of a fixed class set, for onnxruntime; --layout does not apply")
    ap.add_argument("--classes", default=None, help="with --format onnx: bake these classes (.yaml/.csv) instead "
                                                     "of the model's own (re-encoded, GR graph rebuilt)")
    ap.add_argument("--mode", choices=("train", "zsl", "gzsl"), default="gzsl",
                    help="with --format onnx: which of the classes to bake (seen, unseen or all)")
    add_checkpoint_options(ap)
    cli.add_overwrite(ap)
    args = ap.parse_args(argv)
    refuse_onnx(args.checkpoint, "--checkpoint")
    if args.format == "onnx":
        return export_onnx(args)
    if args.layout == "reference":  # refuse before the (long) load
        if not args.to.endswith(export.WEIGHT_SUFFIXES):
            raise InputError(f"--to {args.to}: the reference layout is a .pth or .safetensors file (.pt also works)")
        export.check_new_outputs([args.to, export.sidecar_path(args.to)], args.overwrite)
    else:
        if args.to.endswith(export.WEIGHT_SUFFIXES):
            raise InputError(f"--to {args.to}: the hf layout is a folder; name one without a file extension")
        export.check_new_outputs([args.to], args.overwrite)
    loaded = _load_for_export(args)
    kw = dict(normalization=(loaded.mean, loaded.std), provenance=loaded.provenance, overwrite=args.overwrite,
              calibration=loaded.calibration)
    if args.layout == "reference":
        path, meta = export.export_reference(loaded.model, loaded.class_set, args.to, loaded.tokenizer, **kw)
        print(f"wrote {path} and {meta}")
    else:
        print(f"wrote {export.export_hf(loaded.model, loaded.class_set, args.to, loaded.tokenizer, **kw)}")
    return 0


def _load_for_export(args) -> LoadedModel:
    loaded = load_model(args)
    if args.recompute_adjacency and loaded.model.adjacency is not None:
        loaded.model.refresh_adjacency(loaded.tokenizer.encode(list(loaded.class_set.phrases)))
        loaded.provenance["adjacency"] = "recomputed with the trained text encoder"
    return loaded


def export_onnx(args) -> int:
    """`export --format onnx`: see sfr_jax/convert/onnx_export.py; the step's calibration is baked in."""
    onnx_export.check_targets(args.to, args.overwrite)  # before the (slow) load
    loaded = _load_for_export(args)
    path, meta = onnx_export.export_onnx(loaded, args.to, classes=args.classes, mode=args.mode,
                                         calibration=loaded.calibration, overwrite=args.overwrite,
                                         provenance=loaded.provenance)
    with open(meta, encoding="utf-8") as handle:
        side = json.load(handle)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, opset {side['opset']}, {len(side['classes'])} "
          f"classes, max |logit - JAX| {side['parity']['max_abs_logit_difference']:.2g}; decisions: "
          f"{side['decisions']['source']}) and {meta}")
    return 0


@cli.verb("sfr-jax import")
def import_main(argv) -> int:
    """`sfr-jax import`: a reference SFR-Net .pth (or one of our exports) -> a workdir at step 0."""
    ap = cli.parser(
        "sfr-jax import",
        "Turn the reference's released checkpoints (e.g. sewerml_best.pth) or our exports into a workdir that "
        "`sfr-jax eval`, `predict --workdir`, `export --workdir` and `train` accept. A .pth without sidecar is "
        "read as a reference checkpoint.")
    ap.add_argument("--from", dest="source", required=True, help="reference .pth, export .pth/.safetensors or hf folder")
    ap.add_argument("--out", required=True, help="the workdir to create")
    ap.add_argument("--tokenizer", default=None,
                    help="tokenizer folder or bpe .txt.gz (default: OpenAI's vocabulary shipped with open_clip)")
    ap.add_argument("--descriptions", default=None,
                    help="one class description per line, class order (e.g. the reference's sewerml_de.txt); "
                         "default: our built-in descriptions")
    ap.add_argument("--classes", default=None, help="class set of a bare .pth: built-in name or .yaml/.csv")
    ap.add_argument("--adjacency", default="current",
                    help="GR graph of a bare .pth: 'current' = from the phrases with the trained text adapters "
                         "(the reference's evaluation, which however leaves adapter dropout on, so its graph can "
                         "differ near the 0.85 threshold), 'frozen' = adapters off (what it trained with), or a "
                         ".npy file with the normalised [C, C] matrix to use as is")
    ap.add_argument("--data-dir", default=None, help="prepared data folder recorded in the workdir's config")
    cli.add_overwrite(ap)
    args = ap.parse_args(argv)
    refuse_onnx(args.source, "--from")
    export.check_new_outputs([args.out], args.overwrite, "--out")
    loaded = imp.load_checkpoint(args.source, tokenizer=args.tokenizer, class_set=args.classes,
                                 descriptions=args.descriptions, adjacency=args.adjacency, bare_reference=True)
    if loaded.provenance.get("read_as") == "bare reference":
        print(f"import: {args.source} has no sidecar: read as a reference SFR-Net checkpoint "
              f"({loaded.class_set.name} classes)", file=sys.stderr)
    out = imp.write_workdir(loaded, args.out, data_dir=args.data_dir, overwrite=args.overwrite,
                            source=args.source)
    print(f"wrote {out}: {loaded.class_set.num_classes} classes ({len(loaded.class_set.seen_ids)} seen), "
          f"{loaded.image_size}px; try `sfr-jax eval --workdir {out} --data-dir DATA`")
    return 0
