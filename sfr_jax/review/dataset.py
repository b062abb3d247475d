"""`sfr-jax prepare reviewed`: reviewed findings become training data (issue 21).

    sfr-jax prepare reviewed --reports REPORTS_DIR --out DATA [--val-fraction 0.2] [--class-set FILE]

For every video of REPORTS_DIR with a review.json (videos nobody reviewed are never used), the frames at
the inspect run's sampling times (frames.csv; frames the quality gate flagged are left out) are labelled
by the resolved events:
- inside an accepted, relabelled or added event: positive for its class;
- inside a rejected event: negative for that class;
- in a video marked fully reviewed, a frame outside every event is negative for every class (normal);
  in one that is not, such a frame is unknown and left out; so is any frame inside a still pending event.
The Sewer-ML row format has no "unknown": a kept frame's other classes are written 0, and the CSV's
`Unknown` column names those that no decision covers (only a fully reviewed video has none).
Frames are written as PNG (lossless) under DATA/raw/images with DATA/raw/SewerML_Train.csv and
SewerML_Val.csv (the official header, plus Video, Time_s, Unknown), then converted by `prepare`'s own
split writer (the one image loader, the same TFRecord format) into DATA/train and DATA/val. The
validation split is carved by video, not by frame: the last videos by name.

`--mix DATA --mix-ratio R` adds R frames of DATA/train (a prepared data set, e.g. the original training
data) per reviewed training frame, drawn at random (`--seed`), with their own labels, so that fine-tuning
does not forget what the model knew; all of DATA/val (when it has one) joins the validation split, so that
`calibrate` fits the thresholds on the reviewed validation videos and on the frames it was calibrated on
before (a first review of one video has no validation video of its own). DATA/classes.yaml is the class set with every class that has reviewed
positives in the training split marked seen: fine-tuning trains it as seen from then on
(`--config.data.class_set=DATA/classes.yaml`), the others stay as they were.
"""
from __future__ import annotations

import csv
import io
import math
import os
import sys

import numpy as np
import yaml
from PIL import Image

from sfr_jax import cli, fileio
from sfr_jax.data import prepare, raw, tfrecords
from sfr_jax.errors import InputError, MissingInput
from sfr_jax.inspection import sources, video
from sfr_jax.review import record
from sfr_jax.text.classes import load_class_set

FRAMES = "frames.csv"
EXTRA_COLUMNS = ("Video", "Time_s", "Unknown")


def frame_times(folder: str) -> list:
    """(time_s, flagged) of every sample of the inspect run, from its frames.csv."""
    path = os.path.join(folder, FRAMES)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [(float(row["time_s"]), row.get("flagged") == "1") for row in csv.DictReader(handle)]
    except (OSError, KeyError, ValueError) as error:
        raise InputError(f"{path}: not a readable frames.csv of `sfr-jax inspect` ({error})") from None


def label_frames(times, events: list, codes, fully_reviewed: bool) -> list:
    """[(time_s, labels [C] uint8, unknown codes)] of the frames a review decides; `events` resolved
    (sfr_jax.review.record.resolved), `codes` the class set's order. See the module docstring."""
    index = {code: k for k, code in enumerate(codes)}
    out = []
    for t in times:
        inside = [e for e in events if e["start_s"] - 1e-6 <= t <= e["end_s"] + 1e-6]
        if any(e["verdict"] == "pending" for e in inside):
            continue
        positive = {e["class"] for e in inside if e["verdict"] in record.POSITIVE}
        negative = {e["class"] for e in inside if e["verdict"] == "rejected"} - positive
        if not fully_reviewed and not positive and not negative:
            continue
        labels = np.zeros(len(codes), np.uint8)
        for code in positive:
            labels[index[code]] = 1
        unknown = [] if fully_reviewed else [c for c in codes if c not in positive | negative]
        out.append((t, labels, unknown))
    return out


def reviewed_videos(reports: str) -> tuple:
    """([(name, folder)] with a review holding at least one decision, [names not reviewed])."""
    used, unreviewed = [], []
    for name in sorted(os.listdir(reports)):
        folder = os.path.join(reports, name)
        if not os.path.isfile(os.path.join(folder, record.EVENTS)):
            continue
        review = os.path.join(folder, record.REVIEW)
        if os.path.isfile(review) and record.load(folder)["decisions"]:
            used.append((name, folder))
        else:
            unreviewed.append(name)
    return used, unreviewed


def _open_source(path: str):
    found, problems = sources.expand([path])
    if not found:
        raise MissingInput(f"video {path!r} (events.json's source) cannot be read: "
                           f"{problems[0][1] if problems else 'not found'}")
    return found[0]


def extract(folder: str, name: str, codes, image_dir: str) -> tuple:
    """Write the decided frames of one video as PNGs into image_dir; ([CSV rows], counts)."""
    events = record.read_events(folder)
    review = record.load(folder)
    resolved = record.resolved(review, events)
    unknown_classes = sorted({e["class"] for e in resolved if e["verdict"] in record.POSITIVE} - set(codes))
    if unknown_classes:
        raise InputError(f"{folder}: reviewed class(es) {' '.join(unknown_classes)} are not in the class set "
                         f"({' '.join(codes)}); give a --class-set file that has them")
    samples = frame_times(folder)
    usable = [t for t, flagged in samples if not flagged]
    wanted = {round(t, 3): (t, labels, unknown) for t, labels, unknown in
              label_frames(usable, resolved, codes, record.fully_reviewed(review))}
    rows, written = [], 0
    for sample in video.Reader(_open_source(events["source"])):
        key = round(sample.time_s, 3)
        if key not in wanted:
            continue
        t, labels, unknown = wanted.pop(key)
        filename = f"{name}__{t:010.3f}.png"
        buffer = io.BytesIO()
        Image.fromarray(sample.frame).save(buffer, format="PNG")
        with fileio.atomic_write(os.path.join(image_dir, filename), "wb") as handle:
            handle.write(buffer.getvalue())
        rows.append((filename, labels, name, t, unknown))
        written += 1
    counts = {"samples": len(samples), "flagged": len(samples) - len(usable), "written": written,
              "missing": len(wanted), "fully_reviewed": record.fully_reviewed(review)}
    return rows, counts


def write_csv(path: str, rows, codes) -> str:
    """A Sewer-ML-style CSV (official header; class columns by code) with Video, Time_s, Unknown after."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = list(raw.SEWERML_OFFICIAL_HEADER)
    extra = [c for c in codes if c not in header]  # a user's classes get their own columns
    header = header[:-1] + extra + header[-1:] + list(EXTRA_COLUMNS)
    writer.writerow(header)
    for filename, labels, name, t, unknown in rows:
        by_code = dict(zip(codes, labels.tolist()))
        cells = {"Filename": filename, "WaterLevel": 0, "Defect": int(labels.any()), "Video": name,
                 "Time_s": "" if math.isnan(t) else f"{t:.3f}", "Unknown": " ".join(unknown)}
        writer.writerow([cells.get(column, by_code.get(column, 0)) for column in header])
    return fileio.write_text(path, buffer.getvalue())


def build_parser():
    ap = cli.parser("sfr-jax prepare reviewed", "reviewed inspection videos -> TFRecord shards for fine-tuning")
    ap.add_argument("--reports", required=True, help="the --out folder of `sfr-jax inspect` with review.json files")
    ap.add_argument("--out", required=True, help="output folder: raw/ (PNG + CSV), train/, val/")
    ap.add_argument("--val-fraction", type=float, default=0.2,
                    help="the share of reviewed VIDEOS (the last by name) kept for validation (default 0.2)")
    ap.add_argument("--class-set", default="sewerml", help="class set name or file (default: sewerml)")
    ap.add_argument("--image-size", type=int, default=224, help="stored size (square)")
    ap.add_argument("--format", choices=["jpeg", "png"], default="png", dest="image_format")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality")
    ap.add_argument("--shard-size", type=int, default=1024, help="images per shard")
    ap.add_argument("--mix", default=None, help="a prepared data folder (e.g. the original training data) whose "
                                                "train split is mixed into the training frames")
    ap.add_argument("--mix-ratio", type=float, default=1.0,
                    help="frames of --mix per reviewed training frame (default 1.0)")
    ap.add_argument("--seed", type=int, default=0, help="which --mix frames are drawn")
    return ap


def mix_rows(data_dir: str, count, codes, image_dir: str, seed: int, split: str = "train") -> list:
    """`count` frames (None: all) of data_dir/<split> drawn at random, written as PNG into image_dir; CSV
    rows with their labels in `codes` order (a code the data set lacks is 0 and named Unknown)."""
    from sfr_jax.tfcpu import tf_cpu

    split_dir = os.path.join(data_dir, split)
    info = tfrecords.read_info(split_dir)
    theirs = list(info["codes"])
    missing = [c for c in codes if c not in theirs]
    total = int(info["num_examples"])
    count = total if count is None else count
    if count > total:
        print(f"--mix {data_dir}: {count} frames wanted, its {split} split has {total}: all taken", file=sys.stderr)
    chosen = set(np.random.default_rng(seed).choice(total, size=min(count, total), replace=False).tolist())
    tf = tf_cpu()
    spec = tfrecords.feature_spec(len(theirs))
    rows = []
    for i, raw_record in enumerate(tf.data.TFRecordDataset(tfrecords.shard_paths(split_dir, info))):
        if i not in chosen:
            continue
        example = tf.io.parse_single_example(raw_record, spec)
        labels = example["labels"].numpy()
        name = ("mix__" if split == "train" else f"mix_{split}__") + os.path.splitext(example["filename"].numpy().decode("utf-8"))[0] + ".png"
        image = Image.open(io.BytesIO(example["image"].numpy())).convert("RGB")
        with fileio.atomic_write(os.path.join(image_dir, name), "wb") as handle:
            image.save(handle, format="PNG")
        row = np.array([labels[theirs.index(c)] if c in theirs else 0 for c in codes], np.uint8)
        rows.append((name, row, "(mixed: " + os.path.basename(os.path.abspath(data_dir)) + ")", math.nan, missing))
    return rows


def promoted(class_set, rows) -> tuple:
    """(the class set as a YAML dict, every field kept, with every class that has a positive among `rows`
    marked seen, the codes promoted)."""
    positive = np.any([labels for _, labels, *_ in rows], axis=0) if rows else np.zeros(len(class_set.codes), bool)
    out = class_set.to_dict()
    promoted_codes = [c.code for c, has in zip(class_set.classes, positive) if has and not c.seen]
    for row, has in zip(out["classes"], positive):
        row["seen"] = bool(row["seen"] or has)
    out["name"] = f"{class_set.name}+reviewed"
    return out, promoted_codes


def split_videos(names: list, fraction: float) -> tuple:
    """(train names, val names): the last round(n * fraction) videos by name (at least one when there are
    two or more and fraction > 0) go to validation."""
    if not 0 <= fraction < 1:
        raise InputError(f"--val-fraction {fraction}: must be >= 0 and < 1")
    n_val = int(round(len(names) * fraction))
    if fraction > 0 and len(names) >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, len(names) - 1) if names else 0
    return names[:len(names) - n_val], names[len(names) - n_val:]


@cli.verb("sfr-jax prepare reviewed")
def main(argv) -> int:
    """Entry point of `sfr-jax prepare reviewed` (dispatched by sfr_jax.review.prepare)."""
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.reports):
        raise MissingInput(f"--reports {args.reports!r}: no such folder")
    class_set = load_class_set(args.class_set)
    codes = list(class_set.codes)
    used, unreviewed = reviewed_videos(args.reports)
    if not used:
        raise InputError(f"--reports {args.reports}: no video has a review.json with decisions "
                         f"({len(unreviewed)} unreviewed); review some with `sfr-jax review` first")
    train_names, val_names = split_videos([name for name, _ in used], args.val_fraction)
    raw_dir = os.path.join(args.out, "raw")
    image_dir = fileio.ensure_dir(os.path.join(raw_dir, "images"))
    rows = {"train": [], "val": []}
    for name, folder in used:
        got, counts = extract(folder, name, codes, image_dir)
        split = "val" if name in val_names else "train"
        rows[split] += got
        print(f"{name}: {counts['written']} frames -> {split} ({counts['flagged']} flagged left out, "
              f"{counts['samples'] - counts['flagged'] - counts['written'] - counts['missing']} undecided, "
              f"{counts['missing']} not decoded; fully reviewed: {'yes' if counts['fully_reviewed'] else 'no'})")
    if unreviewed:
        print(f"not used ({len(unreviewed)} not reviewed): {' '.join(unreviewed)}", file=sys.stderr)
    classes, promoted_codes = promoted(class_set, rows["train"])
    if args.mix:
        if not args.mix_ratio >= 0:
            raise InputError(f"--mix-ratio {args.mix_ratio}: must be >= 0")
        mixed = mix_rows(args.mix, int(round(args.mix_ratio * len(rows["train"]))), codes, image_dir, args.seed)
        rows["train"] += mixed
        print(f"train: {len(mixed)} frames of {args.mix}/train mixed in (ratio {args.mix_ratio:g})")
        if os.path.isdir(os.path.join(args.mix, "val")):
            held = mix_rows(args.mix, None, codes, image_dir, args.seed, split="val")
            rows["val"] += held
            print(f"val: all {len(held)} frames of {args.mix}/val added (calibration keeps what it knew)")
    class_path = fileio.write_text(os.path.join(args.out, "classes.yaml"),
                                   yaml.safe_dump(classes, sort_keys=False, allow_unicode=True))
    print(f"class set -> {class_path} (seen from now on, for reviewed positives: "
          f"{' '.join(promoted_codes) or 'none new'})")
    options = {"dataset": "reviewed", "image_size": args.image_size, "image_format": args.image_format,
               "quality": args.quality, "shard_size": args.shard_size, "codes": codes, "zero_shot": False,
               "resize": "bilinear"}
    runner = prepare._Runner(1)
    for split, csv_name in (("train", "SewerML_Train.csv"), ("val", "SewerML_Val.csv")):
        csv_path = write_csv(os.path.join(raw_dir, csv_name), rows[split], codes)
        if not rows[split]:
            print(f"{split}: no frames (no reviewed video in it)", file=sys.stderr)
            continue
        source = raw.SplitSource(split, csv_path, image_dir)
        info = prepare.prepare_split(source, args.out, dataset="reviewed", class_set=class_set, options=options,
                                     runner=runner, progress=False)
        print(f"{split}: {info['num_examples']} frames of {len(train_names if split == 'train' else val_names)} "
              f"video(s), {info['num_normal']} normal -> {os.path.join(args.out, split)}")
    runner.close()
    return 0

