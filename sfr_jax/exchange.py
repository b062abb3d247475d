"""`sfr-jax export` and `sfr-jax import`: trained models out to PyTorch / ONNX, and in from PyTorch files.

    sfr-jax export --workdir W [--step N | --best] --to run1.pth [--layout hf] [--format onnx]
    sfr-jax import --from sewerml_best.pth --out checkpoints/ref-best
"""
from __future__ import annotations

import json
import os
import sys

from sfr_jax import cli
from sfr_jax.convert import export
from sfr_jax.convert import import_reference as imp
from sfr_jax.convert import onnx_export
from sfr_jax.errors import InputError
from sfr_jax.infer.model import LoadedModel
from sfr_jax.serve.backends import open_model
from sfr_jax.text.classes import MODES
from sfr_jax.train.imported import write_workdir


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
    ap.add_argument("--mode", choices=MODES, default="gzsl",
                    help="with --format onnx: which of the classes to bake (seen, unseen or all)")
    ap.add_argument("--heatmaps", action="store_true",
                    help="with --format onnx: a third output `maps` [batch, c, g, g], MEF's patch affinities")
    cli.add_checkpoint_options(ap)
    cli.add_overwrite(ap)
    args = ap.parse_args(argv)
    refuse_onnx(args.checkpoint, "--checkpoint")
    source = cli.model_source(args)
    if args.format == "onnx":
        return export_onnx(args, source)
    if args.layout == "reference":  # refuse before the (long) load
        if not args.to.endswith(export.WEIGHT_SUFFIXES):
            raise InputError(f"--to {args.to}: the reference layout is a .pth or .safetensors file (.pt also works)")
        export.check_new_outputs([args.to, export.sidecar_path(args.to)], args.overwrite)
    else:
        if args.to.endswith(export.WEIGHT_SUFFIXES):
            raise InputError(f"--to {args.to}: the hf layout is a folder; name one without a file extension")
        export.check_new_outputs([args.to], args.overwrite)
    loaded = _load_for_export(args, source)
    kw = dict(normalization=(loaded.mean, loaded.std), provenance=loaded.provenance, overwrite=args.overwrite,
              calibration=loaded.calibration)
    if args.layout == "reference":
        path, meta = export.export_reference(loaded.model, loaded.class_set, args.to, loaded.tokenizer, **kw)
        print(f"wrote {path} and {meta}")
    else:
        print(f"wrote {export.export_hf(loaded.model, loaded.class_set, args.to, loaded.tokenizer, **kw)}")
    return 0


def _load_for_export(args, source) -> LoadedModel:
    loaded = open_model(source)
    if args.recompute_adjacency and loaded.model.adjacency is not None:
        loaded.model.refresh_adjacency(loaded.tokenizer.encode(list(loaded.class_set.phrases)))
        loaded.provenance["adjacency"] = "recomputed with the trained text encoder"
    return loaded


def export_onnx(args, source) -> int:
    """`export --format onnx`: see sfr_jax/convert/onnx_export.py; the step's calibration is baked in."""
    onnx_export.check_targets(args.to, args.overwrite)  # before the (slow) load
    loaded = _load_for_export(args, source)
    path, meta = onnx_export.export_onnx(loaded, args.to, classes=args.classes, mode=args.mode,
                                         calibration=loaded.calibration, overwrite=args.overwrite,
                                         provenance=loaded.provenance, maps=args.heatmaps)
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
    export.check_new_outputs([args.out], args.overwrite, "--out")
    refuse_onnx(args.source, "--from")
    loaded = imp.load_checkpoint(args.source, tokenizer=args.tokenizer, class_set=args.classes,
                                 descriptions=args.descriptions, adjacency=args.adjacency, bare_reference=True)
    if loaded.provenance.get("read_as") == "bare reference":
        print(f"import: {args.source} has no sidecar: read as a reference SFR-Net checkpoint "
              f"({loaded.class_set.name} classes)", file=sys.stderr)
    out = write_workdir(loaded, args.out, data_dir=args.data_dir, overwrite=args.overwrite,
                            source=args.source)
    print(f"wrote {out}: {loaded.class_set.num_classes} classes ({len(loaded.class_set.seen_ids)} seen), "
          f"{loaded.image_size}px; try `sfr-jax eval --workdir {out} --data-dir DATA`")
    return 0
