"""`sfr-jax predict`: score images with a trained SFR-Net, also for defect classes described by the user.

    sfr-jax predict --workdir DIR [--step N | --best] IMAGES... [--classes my_classes.yaml]
                    [--mode train|zsl|gzsl] [--top-k K] [--format table|csv|json] [--out FILE]
    sfr-jax predict --checkpoint FILE.pth|EXPORT_DIR IMAGES... [...]

IMAGES are files, folders (their images, recursively) or globs. Unreadable images are reported and skipped.
With --classes, the given classes' descriptions are encoded, GR's adjacency is rebuilt from their phrases with
the trained text encoder, and every class is scored zero-shot. Scores are sigmoid(logit); JSON also carries
the raw logits, both in class-set order.
"""
from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def collect_images(patterns) -> tuple[list, list]:
    """(image paths in a stable order, [(pattern, problem)]) from files, folders and globs."""
    paths, problems, seen = [], [], set()

    def add(p):
        p = os.path.abspath(p)
        if p not in seen:
            seen.add(p)
            paths.append(p)

    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(os.path.join(root, f) for root, _, files in os.walk(pattern) for f in files
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                problems.append((pattern, "folder holds no image files"))
            for f in found:
                add(f)
        elif os.path.isfile(pattern):
            add(pattern)
        elif glob.has_magic(pattern):
            found = sorted(f for f in glob.glob(pattern, recursive=True) if os.path.isfile(f))
            if not found:
                problems.append((pattern, "no file matches"))
            for f in found:
                add(f)
        else:
            problems.append((pattern, "no such file or folder"))
    return paths, problems


def read_image(path: str, size: int, mean, std) -> np.ndarray:
    """An image file -> [size, size, 3] float32, RGB, bilinear resize, normalised as in training."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        x = np.asarray(img, np.float32) / 255.0
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def use_classes(loaded, path: str) -> None:
    """Replace the model's classes by a user's class file: description tokens, GR adjacency from the phrases."""
    from sfr_jax.text.classes import load_class_set

    class_set = load_class_set(path, check_length=True, tokenizer=loaded.tokenizer)
    model = loaded.model
    model.class_tokens.set_value(np.asarray(loaded.tokenizer.encode(list(class_set.descriptions)), np.int32))
    model.num_classes = class_set.num_classes
    if model.adjacency is not None:
        phrases = loaded.tokenizer.encode(list(class_set.phrases))
        model.adjacency.set_value(np.asarray(model.compute_adjacency(phrases), np.float32))
    loaded.class_set = class_set


def score(loaded, images: list, mode: str, batch: int = 16):
    """(logits [N, c] of `mode`'s classes, readable paths, [(path, error)]) over image paths, in batches."""
    import jax.numpy as jnp
    from flax import nnx

    ids = loaded.class_set.ids(mode)
    if not ids:
        raise ValueError(f"mode {mode!r} selects no class of {loaded.class_set.name!r} "
                         f"(seen: {len(loaded.class_set.seen_ids)}, unseen: {len(loaded.class_set.unseen_ids)})")
    model = loaded.model
    text = model.text_features(ids)  # once, not per batch
    forward = nnx.jit(lambda m, x, t: m(x, ids, text_features=t))
    logits, ok, failed = [], [], []
    pending, pending_paths = [], []

    def flush():
        if not pending:
            return
        x = np.stack(pending)
        n = len(x)
        if n < batch:  # one compiled shape for every batch
            x = np.concatenate([x, np.zeros((batch - n,) + x.shape[1:], x.dtype)])
        logits.append(np.asarray(forward(model, jnp.asarray(x), text))[:n])
        ok.extend(pending_paths)
        pending.clear()
        pending_paths.clear()

    for path in images:
        try:
            pending.append(read_image(path, loaded.image_size, loaded.mean, loaded.std))
            pending_paths.append(path)
        except Exception as error:  # any decoder failure: report, skip, go on
            failed.append((path, f"{type(error).__name__}: {error}"))
            continue
        if len(pending) == batch:
            flush()
    flush()
    out = np.concatenate(logits) if logits else np.zeros((0, len(ids)), np.float32)
    return out.astype(np.float32), ok, failed


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def render(fmt: str, codes, paths, logits, top_k: int, mode: str, class_set_name: str) -> str:
    """The results as an aligned table, CSV (one column per class) or JSON (logits and scores per path)."""
    scores = sigmoid(logits)
    k = min(top_k, len(codes)) if top_k else 0
    order = np.argsort(-logits, axis=1, kind="stable")
    if fmt == "json":
        items = []
        for i, path in enumerate(paths):
            item = {"path": path, "logits": [float(v) for v in logits[i]], "scores": [float(v) for v in scores[i]]}
            if k:
                item["top_k"] = [{"code": codes[j], "score": float(scores[i, j])} for j in order[i, :k]]
            items.append(item)
        return json.dumps({"class_set": class_set_name, "mode": mode, "classes": list(codes), "images": items},
                          indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if k:
            writer.writerow(["path"] + [f"top{r + 1}{s}" for r in range(k) for s in ("", "_score")])
            for i, path in enumerate(paths):
                writer.writerow([path] + [v for j in order[i, :k] for v in (codes[j], f"{scores[i, j]:.6f}")])
        else:
            writer.writerow(["path"] + list(codes))
            for i, path in enumerate(paths):
                writer.writerow([path] + [f"{v:.6f}" for v in scores[i]])
        return buf.getvalue().rstrip("\n")
    names = [os.path.relpath(p) if not os.path.relpath(p).startswith("..") else p for p in paths]
    width = max([len(n) for n in names] + [5])
    if k:
        lines = [f"{'image':<{width}}  " + "  ".join(f"top{r + 1:<10}" for r in range(k))]
        for i, name in enumerate(names):
            lines.append(f"{name:<{width}}  " + "  ".join(f"{codes[j]:>5} {scores[i, j]:.3f}" for j in order[i, :k]))
    else:
        cols = [max(len(c), 5) for c in codes]
        lines = [f"{'image':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(codes, cols))]
        for i, name in enumerate(names):
            lines.append(f"{name:<{width}}  " + "  ".join(f"{v:>{w}.3f}" for v, w in zip(scores[i], cols)))
    return "\n".join(lines)


def main(argv) -> int:
    """Parse, load the model, score, print or write the results; 0 when at least one image was scored."""
    ap = argparse.ArgumentParser(prog="sfr-jax predict", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--workdir", help="training (or imported) workdir")
    src.add_argument("--checkpoint", help="PyTorch checkpoint: reference .pth, our export (+ .json), hf folder")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, default=None)
    which.add_argument("--best", action="store_true")
    ap.add_argument("images", nargs="+", help="image files, folders or globs")
    ap.add_argument("--classes", default=None, help="your own classes (.yaml/.csv: code, phrase, description, seen)")
    ap.add_argument("--mode", choices=("train", "zsl", "gzsl"), default="gzsl",
                    help="which classes: seen (train), unseen (zsl) or all (gzsl, default)")
    ap.add_argument("--top-k", type=int, default=0, help="show only the K best classes per image (0: all)")
    ap.add_argument("--format", choices=("table", "csv", "json"), default="table")
    ap.add_argument("--out", default=None, help="write the results to this file instead of stdout")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokenizer", default=None, help="with a bare reference .pth: tokenizer folder or bpe .txt.gz")
    ap.add_argument("--descriptions", default=None, help="with a bare reference .pth: one description per line")
    args = ap.parse_args(argv)
    if args.top_k < 0 or args.batch < 1:
        print("sfr-jax predict: --top-k must be >= 0 and --batch >= 1", file=sys.stderr)
        return 2

    from sfr_jax.convert import import_reference as imp
    from sfr_jax.text.classes import ClassSetError

    images, problems = collect_images(args.images)
    for pattern, why in problems:
        print(f"sfr-jax predict: {pattern}: {why}", file=sys.stderr)
    if not images:
        print("sfr-jax predict: no images to score", file=sys.stderr)
        return 1
    try:
        if args.checkpoint:
            loaded = imp.load_checkpoint(args.checkpoint, tokenizer=args.tokenizer, descriptions=args.descriptions)
        else:
            loaded = imp.load_workdir(args.workdir, step=args.step, best=args.best)
        if args.classes:
            use_classes(loaded, args.classes)
        logits, paths, failed = score(loaded, images, args.mode, args.batch)
    except ClassSetError as error:
        print(f"sfr-jax predict: invalid class file: {error}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as error:
        print(f"sfr-jax predict: {error}", file=sys.stderr)
        return 2
    for path, why in failed:
        print(f"sfr-jax predict: skipped unreadable image {path}: {why}", file=sys.stderr)
    if not paths:
        print("sfr-jax predict: no readable image", file=sys.stderr)
        return 1
    ids = loaded.class_set.ids(args.mode)
    codes = [loaded.class_set.codes[i] for i in ids]
    text = render(args.format, codes, paths, logits, args.top_k, args.mode, loaded.class_set.name)
    if args.out:
        tmp = f"{args.out}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, args.out)
        print(f"scored {len(paths)} image(s) ({len(failed)} skipped) -> {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0
