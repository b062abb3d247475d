"""`sfr-jax predict`: score images with a trained SFR-Net, also for defect classes described by the user.

    sfr-jax predict --workdir DIR [--step N | --best] IMAGES... [--classes my_classes.yaml]
                    [--mode train|zsl|gzsl] [--top-k K] [--format table|csv|json] [--out FILE]
    sfr-jax predict --checkpoint FILE.pth|EXPORT_DIR IMAGES... [...] [--heatmaps DIR [--heatmaps-all]]

IMAGES are files, folders (their images, recursively) or globs; every image goes through the one image
loader (sfr_jax.data.images). A folder's file is an image when PIL takes it for one (images.is_image_file:
any format PIL opens, by extension or content); the other files are counted and named, hidden ones (.name)
are not looked at. Unreadable images are reported, counted and skipped. With --classes, the given
classes' descriptions are encoded, GR's adjacency is rebuilt from their phrases with the trained text encoder,
and every class is scored zero-shot (the calibration's unseen-class rule gives their thresholds). Every format
carries per image the probability of each class, the classes that fire and `normal` (none fires); JSON also
the raw logits. Probabilities and thresholds come from the model's calibration (`sfr-jax calibrate`), else
sigmoid(logit) and 0.5, which is said once. --heatmaps DIR writes per image an overlay PNG of where the model
looked (MEF's patch affinities, sfr_jax.eval.heatmaps) for each class that fires (--heatmaps-all: every class),
and DIR/heatmaps.json with each map's peak and clock position (--axis X,Y: the pipe axis, default the centre).
"""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys

import numpy as np

from sfr_jax import cli
from sfr_jax.data import images as images_lib
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.eval import heatmaps as heatmaps_lib
from sfr_jax.fileio import atomic_directory, atomic_write, write_json, write_text
from sfr_jax.serve.backends import open_scorer
from sfr_jax.text.classes import MODES, check_class_file


def _files_under(folder: str) -> list:
    """Every file under `folder`, sorted; hidden files and folders (.name) are not looked at."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files.extend(os.path.join(root, f) for f in names if not f.startswith("."))
    return sorted(files)


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
            files = _files_under(pattern)
            found = [f for f in files if images_lib.is_image_file(f)]
            if not found:
                problems.append((pattern, "folder holds no image files"))
            if len(found) < len(files):
                taken = set(found)
                others = [os.path.basename(f) for f in files if f not in taken]
                problems.append((pattern, f"{len(others)} other file(s) left out, not images PIL opens: "
                                          f"{', '.join(others[:5])}" + (" ..." if len(others) > 5 else "")))
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


def score(scorer, paths: list, on_maps=None):
    """(logits [N, c], readable paths, [(path, error)]) over image paths, read and scored in batches. With
    on_maps, the batches are scored with their heatmaps and on_maps(paths, images, logits, maps) sees each."""
    logits, ok, failed, pending = [], [], [], []

    def flush():
        if pending:
            batch = np.stack([image for _, image in pending])
            if on_maps is None:
                logits.append(scorer.logits(batch))
            else:
                got, maps = scorer.logits_and_maps(batch)
                on_maps([path for path, _ in pending], batch, got, maps)
                logits.append(got)
            ok.extend(path for path, _ in pending)
            pending.clear()

    for path in paths:
        try:
            pending.append((path, images_lib.load(path, scorer.image_size)))
        except images_lib.ImageError as error:
            failed.append((path, str(error)))
            continue
        if len(pending) == scorer.batch_size:
            flush()
    flush()
    out = np.concatenate(logits) if logits else np.zeros((0, len(scorer.codes)), np.float32)
    return out.astype(np.float32), ok, failed



class HeatmapWriter:
    """on_maps for `score`: per image an overlay PNG per class that fires (or every class), and a record of
    each map's peak and clock position, written as DIR/heatmaps.json by `finish`."""

    def __init__(self, folder: str, codes, decisions, every_class: bool, axis=(0.5, 0.5), scale_to: int = 224):
        self.folder, self.codes, self.decisions = folder, tuple(codes), decisions
        self.every_class, self.axis, self.scale_to = every_class, tuple(axis), scale_to
        self.items, self._stems = [], set()

    def _stem(self, path: str) -> str:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, n = stem, 1
        while name in self._stems:  # same file name in two folders
            n += 1
            name = f"{stem}_{n}"
        self._stems.add(name)
        return name

    def __call__(self, paths, images, logits, maps) -> None:
        fired = self.decisions.apply(logits)["fired"]
        for i, path in enumerate(paths):
            stem = self._stem(path)
            picture = images[i]
            if picture.shape[0] < self.scale_to:  # small models' inputs: enlarge so the map is visible
                picture = images_lib.from_array(picture, self.scale_to)
            item = {"path": path, "maps": []}
            for j, code in enumerate(self.codes):
                if not (self.every_class or fired[i, j]):
                    continue
                heat = maps[i, j]
                name = f"{stem}.{code}.png"
                with atomic_write(os.path.join(self.folder, name), "wb") as handle:
                    handle.write(heatmaps_lib.png_bytes(heatmaps_lib.overlay(picture, heat)))
                position = heatmaps_lib.clock_position(heat, self.axis)
                item["maps"].append({"code": code, "fires": bool(fired[i, j]), "file": name,
                                     "peak": heatmaps_lib.peak(heat), "clock": position,
                                     "clock_text": heatmaps_lib.clock_text(position)})
            self.items.append(item)

    def finish(self) -> None:
        write_json(os.path.join(self.folder, "heatmaps.json"), {
            "classes": list(self.codes), "axis": list(self.axis), "every_class": self.every_class,
            "what": "MEF's per-class softmax over the image patches; overlays scaled to each map's maximum",
            "images": self.items})


def render(fmt: str, codes, paths, logits, top_k: int, mode: str, class_set_name: str, decisions) -> str:
    """The results as an aligned table (fired classes marked *), CSV or JSON: per image the probability of
    every class, the classes that fire (`labels`), their tier (`confident` or `review`) and `normal` (none
    fires)."""
    decided = decisions.apply(logits)
    prob, fired, normal, tier = decided["prob"], decided["fired"], decided["normal"], decided["tier"]
    labels = [[codes[j] for j in np.flatnonzero(row)] for row in fired]
    confident = [[codes[j] for j in np.flatnonzero(row == "confident")] for row in tier]
    k = min(top_k, len(codes)) if top_k else 0
    order = np.argsort(-prob, axis=1, kind="stable")
    if fmt == "json":
        items = []
        for i, path in enumerate(paths):
            item = {"path": path, "labels": labels[i], "normal": bool(normal[i]),
                    "tiers": {codes[j]: str(tier[i, j]) for j in np.flatnonzero(fired[i])},
                    "prob": {c: float(p) for c, p in zip(codes, prob[i])},
                    "scores": [float(v) for v in prob[i]], "logits": [float(v) for v in logits[i]]}
            if k:
                item["top_k"] = [{"code": codes[j], "score": float(prob[i, j])} for j in order[i, :k]]
            items.append(item)
        return json.dumps({"class_set": class_set_name, "mode": mode, "classes": list(codes),
                           "thresholds": {c: float(t) for c, t in zip(codes, decisions.threshold)},
                           "confident_thresholds": _confident_thresholds(codes, decisions),
                           "decisions": decisions.source, "tiers": decisions.tier_note, "images": items}, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if k:
            writer.writerow(["path"] + [f"top{r + 1}{s}" for r in range(k) for s in ("", "_score")]
                            + ["labels", "normal", "confident"])
            for i, path in enumerate(paths):
                writer.writerow([path] + [v for j in order[i, :k] for v in (codes[j], f"{prob[i, j]:.6f}")]
                                + [" ".join(labels[i]), str(bool(normal[i])).lower(), " ".join(confident[i])])
        else:
            writer.writerow(["path"] + list(codes) + ["labels", "normal", "confident"])
            for i, path in enumerate(paths):
                writer.writerow([path] + [f"{v:.6f}" for v in prob[i]]
                                + [" ".join(labels[i]), str(bool(normal[i])).lower(), " ".join(confident[i])])
        return buf.getvalue().rstrip("\n")
    names = [os.path.relpath(p) if not os.path.relpath(p).startswith("..") else p for p in paths]
    width = max([len(n) for n in names] + [5])
    # A class for review carries a "?" in the decision: a person should look before it is recorded.
    verdict = ["normal" if normal[i] else " ".join(codes[j] + ("" if tier[i, j] == "confident" else "?")
                                                   for j in np.flatnonzero(fired[i])) for i in range(len(paths))]
    mark = lambda i, j: "*" if fired[i, j] else " "  # noqa: E731
    if k:
        lines = [f"{'image':<{width}}  " + "  ".join(f"top{r + 1:<11}" for r in range(k)) + "  decision"]
        for i, name in enumerate(names):
            lines.append(f"{name:<{width}}  " + "  ".join(f"{codes[j]:>5} {prob[i, j]:.3f}{mark(i, j)}"
                                                          for j in order[i, :k]) + f"  {verdict[i]}")
    else:
        cols = [max(len(c), 5) for c in codes]
        lines = [f"{'image':<{width}}  " + "  ".join(f"{c:>{w}} " for c, w in zip(codes, cols)) + "  decision"]
        for i, name in enumerate(names):
            lines.append(f"{name:<{width}}  " + "  ".join(f"{prob[i, j]:>{w}.3f}{mark(i, j)}"
                                                          for j, w in enumerate(cols)) + f"  {verdict[i]}")
    lines.append(f"(* fires; probabilities and thresholds: {decisions.source}; a class marked ? in the decision "
                 "is for review, below its confident threshold)")
    return "\n".join(lines)


def _confident_thresholds(codes, decisions) -> dict:
    """The confident tier's threshold per class (null: never confident); empty with one tier."""
    if not decisions.tiered:
        return {}
    return {c: (float(t) if np.isfinite(t) else None) for c, t in zip(codes, decisions.confident)}


def build_parser():
    ap = cli.parser("sfr-jax predict", __doc__.split("\n\n")[0])
    cli.add_model_source(ap)
    ap.add_argument("images", nargs="+", help="image files, folders or globs")
    ap.add_argument("--classes", default=None, help="your own classes (.yaml/.csv: code, phrase, description, seen)")
    ap.add_argument("--mode", choices=MODES, default=None,
                    help="which classes: seen (train), unseen (zsl) or all (gzsl, the default; an ONNX export "
                         "scores the classes it was exported with)")
    ap.add_argument("--top-k", type=int, default=0, help="show only the K best classes per image (0: all)")
    ap.add_argument("--format", choices=("table", "csv", "json"), default="table")
    ap.add_argument("--out", default=None, help="write the results to this file instead of stdout")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--heatmaps", default=None, metavar="DIR",
                    help="write an overlay PNG of where the model looked per image and class that fires, and "
                         "DIR/heatmaps.json (peaks, clock positions)")
    ap.add_argument("--heatmaps-all", action="store_true", help="with --heatmaps: an overlay for every class")
    ap.add_argument("--axis", default="0.5,0.5", metavar="X,Y",
                    help="the pipe axis for clock positions, fractions of width and height (default the centre)")
    cli.add_checkpoint_options(ap)
    return ap


@cli.verb("sfr-jax predict")
def main(argv) -> int:
    """Parse, load the model, score, print or write the results."""
    args = build_parser().parse_args(argv)
    if args.top_k < 0 or args.batch < 1:
        raise InputError(f"--top-k must be >= 0 and --batch >= 1 (got {args.top_k}, {args.batch})")
    images, problems = collect_images(args.images)
    for pattern, why in problems:
        print(f"sfr-jax predict: {pattern}: {why}", file=sys.stderr)
    if not images:
        raise MissingInput(f"no images to score in {' '.join(args.images)}")
    if args.out:  # refuse an impossible output now, not after scoring everything
        if os.path.isdir(args.out):
            raise InputError(f"--out {args.out} is a folder; give a file name")
    if args.heatmaps_all and not args.heatmaps:
        raise InputError("--heatmaps-all needs --heatmaps DIR")
    if args.heatmaps and os.path.exists(args.heatmaps) and not os.path.isdir(args.heatmaps):
        raise InputError(f"--heatmaps {args.heatmaps} is a file; give a folder")
    axis = heatmaps_lib.parse_axis(args.axis)
    if args.classes:  # the cheap checks before the model's load
        check_class_file(args.classes)
    source = cli.model_source(args, classes=args.classes, mode=args.mode)
    scorer, class_set_name = open_scorer(source, args.batch)
    if args.heatmaps and not getattr(scorer, "has_maps", False):
        raise InputError(f"--heatmaps: {args.checkpoint} was exported without heatmaps; export it again with "
                         "--heatmaps")
    if not scorer.decisions.calibrated:
        print("sfr-jax predict: note: no calibration for this model: probabilities are sigmoid(logit) and a "
              "class fires at 0.5; run `sfr-jax calibrate` for decisions you can trust", file=sys.stderr)
    if not scorer.decisions.tiered:
        print(f"sfr-jax predict: note: {scorer.decisions.tier_note}", file=sys.stderr)
    if args.heatmaps:
        with atomic_directory(args.heatmaps) as tmp:  # the folder appears complete or not at all
            writer = HeatmapWriter(tmp, scorer.codes, scorer.decisions, args.heatmaps_all, axis)
            logits, paths, failed = score(scorer, images, writer)
            writer.finish()
        print(f"sfr-jax predict: heatmaps of {len(paths)} image(s) -> {args.heatmaps}", file=sys.stderr)
    else:
        logits, paths, failed = score(scorer, images)
    for path, why in failed:
        print(f"sfr-jax predict: skipped: {why}", file=sys.stderr)
    if not paths:
        raise InputError(f"no readable image among the {len(images)} given (reasons above)")
    text = render(args.format, scorer.codes, paths, logits, args.top_k, args.mode or "gzsl", class_set_name,
                  scorer.decisions)
    if args.out:
        write_text(args.out, text + "\n")
        print(f"scored {len(paths)} image(s) ({len(failed)} skipped) -> {args.out}", file=sys.stderr)
    else:
        print(text)
        if failed:
            print(f"scored {len(paths)} image(s), {len(failed)} skipped", file=sys.stderr)
    return 0
