"""`sfr-jax prepare`: raw Sewer-ML / WZ-Pipe (PNG + CSV) -> resized, encoded TFRecord shards, once.

Shards are written in parallel (one shard per task), each to a temporary name and renamed when complete,
so an interrupted run resumes by skipping finished shards (and removes the temporaries of the interrupted
ones). Bad rows and images are counted and listed in <split>/rejects.csv instead of stopping the run; images
are read by the one image loader (sfr_jax.data.images), so its mode rules apply here as in predict.
"""
from __future__ import annotations

import collections
import csv
import datetime
import hashlib
import io
import json
import math
import multiprocessing
import os
import signal

import numpy as np
from tqdm import tqdm

from sfr_jax import cli
from sfr_jax.data import images, raw, tfrecords
from sfr_jax.errors import InputError
from sfr_jax.fileio import atomic_path, atomic_write, ensure_dir, remove_stale_temps_in, write_json
from sfr_jax.text.classes import load_class_set
from sfr_jax.tfcpu import tf_cpu

PROGRESS_DIR = ".progress"  # per-shard receipts and the options of the run, inside each split folder
OPTION_KEYS = ("image_size", "image_format", "quality", "shard_size", "codes", "zero_shot", "dataset", "rows",
               "resize")
RESIZE_CHOICES = ("reference", "bicubic", "bilinear")


def split_resize(option: str, split: str) -> str:
    """The PIL filter of a split: 'reference' = the reference's transforms, bicubic for training
    (T.Resize(interpolation=3)) and bilinear for evaluation (T.Resize's default), SPEC §6."""
    if option not in RESIZE_CHOICES:
        raise InputError(f"--resize {option!r} not in {RESIZE_CHOICES}")
    if option == "reference":
        return "bicubic" if split == "train" else "bilinear"
    return option


def encode_image(path: str, image_size: int, image_format: str, quality: int, resize: str = "bicubic") -> bytes:
    """Read an image (sfr_jax.data.images rules), resize to image_size x image_size with PIL's `resize`
    filter and encode it."""
    image = images.resize(images.open_rgb(path), image_size, resize)
    buffer = io.BytesIO()
    if image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _write_shard(task: dict) -> dict:
    """Encode and write one shard (worker side); returns its receipt, also saved next to the shards."""
    tf = tf_cpu()  # only its record writer is used; never let it claim an accelerator

    final = os.path.join(task["split_dir"], task["name"])
    written, normal, rejects = 0, 0, []
    counts = np.zeros(len(task["labels"][0]) if task["labels"] else 0, np.int64)
    with atomic_path(final) as tmp:  # renamed last: a shard under its final name is always complete
        with tf.io.TFRecordWriter(tmp) as writer:
            for filename, line, labels in zip(task["filenames"], task["lines"], task["labels"]):
                path = os.path.join(task["image_dir"], filename)
                if not os.path.isfile(path):
                    rejects.append([line, filename, "missing image"])
                    continue
                try:
                    encoded = encode_image(path, task["image_size"], task["image_format"], task["quality"],
                                           task["resize"])
                except images.ImageError as error:
                    rejects.append([line, filename, f"unreadable image: {error}"])
                    continue
                writer.write(tfrecords.serialize(encoded, filename, labels))
                counts += np.asarray(labels, np.int64)
                written += 1
                normal += not any(labels)
        receipt = {"name": task["name"], "rows": len(task["filenames"]), "written": written,
                   "class_counts": counts.tolist(), "num_normal": normal, "rejects": rejects}
        write_json(os.path.join(task["split_dir"], PROGRESS_DIR, task["name"] + ".json"), receipt)
    return receipt


def _check_options(split_dir: str, options: dict) -> None:
    """Refuse to resume into a folder written with different options (it would mix two formats)."""
    path = os.path.join(split_dir, PROGRESS_DIR, "options.json")
    if os.path.exists(path):
        with open(path) as handle:
            previous = json.load(handle)
        previous.setdefault("resize", "bicubic")  # folders written before --resize existed used bicubic
        changed = [key for key in OPTION_KEYS if previous.get(key) != options.get(key)]
        if changed:
            details = ", ".join(f"{key}: {previous.get(key)!r} -> {options.get(key)!r}" for key in changed)
            raise InputError(f"{split_dir} was prepared with other options or another CSV ({details}); "
                             "use a new --out")
    else:
        write_json(path, options)


def _receipt(split_dir: str, name: str):
    """The receipt of a finished shard, or None if the shard must be (re)written."""
    receipt = os.path.join(split_dir, PROGRESS_DIR, name + ".json")
    if os.path.exists(os.path.join(split_dir, name)) and os.path.exists(receipt):
        with open(receipt) as handle:
            return json.load(handle)
    return None


def _worker_init() -> None:
    """Workers leave Ctrl-C to the parent, which stops them all (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Runner:
    """Runs shard tasks in this process (workers <= 1) or in a lazily started pool of spawned workers."""

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None

    def map(self, tasks):
        if self.workers <= 1 or len(tasks) <= 1:
            return map(_write_shard, tasks)
        if self.pool is None:
            # spawn, not fork: the parent may hold TensorFlow/JAX threads that fork would copy mid-state
            self.pool = multiprocessing.get_context("spawn").Pool(self.workers, initializer=_worker_init)
        return self.pool.imap_unordered(_write_shard, tasks)

    def close(self, failed: bool = False):
        if self.pool is not None:
            if failed:  # Ctrl-C or an error: stop now; unfinished shards are only temporaries
                self.pool.terminate()
            else:
                self.pool.close()
            self.pool.join()


def prepare_split(source: raw.SplitSource, out: str, *, dataset: str, class_set, options: dict, runner: _Runner,
                  progress: bool = True) -> dict:
    """Convert one split; returns its metadata.json content. Finished shards of an earlier run are kept."""
    zero_shot = options["zero_shot"] and source.name == "train"
    options = dict(options, resize=split_resize(options["resize"], source.name))
    rows = raw.read_split(source, class_set.codes)
    if source.carve:
        rows = raw.carve(rows, *source.carve)
    if zero_shot:
        rows = raw.without_unseen(rows, class_set.unseen_ids)
    if not rows.filenames:
        raise InputError(f"{source.csv_path}: no usable rows ({len(rows.rejects)} rejected, "
                         f"{rows.dropped_unseen} dropped for unseen labels)")
    split_dir = os.path.join(out, source.name)
    ensure_dir(os.path.join(split_dir, PROGRESS_DIR))
    remove_stale_temps_in(split_dir)  # shards and receipts of an interrupted run
    remove_stale_temps_in(os.path.join(split_dir, PROGRESS_DIR))
    # the rows decide which image lands in which shard: a changed CSV must not resume into old shards
    digest = hashlib.sha1("\n".join(rows.filenames).encode("utf-8"))
    digest.update(np.ascontiguousarray(rows.labels).tobytes())
    _check_options(split_dir, dict(options, rows=f"{len(rows.filenames)} rows, sha1 {digest.hexdigest()}"))

    size = options["shard_size"]
    count = math.ceil(len(rows.filenames) / size)
    tasks, receipts = [], {}
    for index in range(count):
        name = tfrecords.shard_name(dataset, source.name, index, count)
        receipt = _receipt(split_dir, name)
        if receipt is not None:
            receipts[name] = receipt
            continue
        part = slice(index * size, (index + 1) * size)
        tasks.append({"name": name, "split_dir": split_dir, "image_dir": source.image_dir,
                      "filenames": rows.filenames[part], "lines": rows.lines[part],
                      "labels": rows.labels[part].tolist(), "image_size": options["image_size"],
                      "image_format": options["image_format"], "quality": options["quality"],
                      "resize": options["resize"]})
    done = sum(receipt["rows"] for receipt in receipts.values())
    with tqdm(total=len(rows.filenames), initial=done, unit="img", desc=f"{dataset} {source.name}",
              disable=not progress, smoothing=0.1, dynamic_ncols=True) as bar:
        if receipts:
            bar.write(f"{source.name}: resuming, {len(receipts)} of {count} shards already written")
        for receipt in runner.map(tasks):
            receipts[receipt["name"]] = receipt
            bar.update(receipt["rows"])

    names = [tfrecords.shard_name(dataset, source.name, i, count) for i in range(count)]
    lengths = [receipts[name]["written"] for name in names]
    class_counts = np.sum([receipts[name]["class_counts"] for name in names], axis=0).astype(int)
    rejects = [[r.line, r.filename, r.reason] for r in rows.rejects]
    rejects += [r for name in names for r in receipts[name]["rejects"]]
    rejects.sort(key=lambda r: (r[0], r[1]))
    with atomic_write(os.path.join(split_dir, "rejects.csv"), newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "filename", "reason"])
        writer.writerows(rejects)

    total = sum(lengths)
    tfrecords.write_tfds_metadata(split_dir, dataset=dataset, split=source.name, shard_lengths=lengths,
                                  image_size=options["image_size"], image_format=options["image_format"],
                                  codes=class_set.codes)
    reasons = collections.Counter(reason.split(":")[0] for _, _, reason in rejects)
    info = {
        "format_version": 1,
        "dataset": dataset,
        "split": source.name,
        "class_set": getattr(class_set, "name", dataset),
        "codes": list(class_set.codes),
        "seen_ids": [int(i) for i in class_set.seen_ids],
        "unseen_ids": [int(i) for i in class_set.unseen_ids],
        "num_examples": total,
        "shards": names,
        "shard_lengths": lengths,
        "image_size": options["image_size"],
        "image_format": options["image_format"],
        "quality": options["quality"] if options["image_format"] == "jpeg" else None,
        "resize": f"PIL {options['resize']}",
        "zero_shot_train": zero_shot,
        "dropped_unseen": rows.dropped_unseen,
        "num_rejected": len(rejects),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "num_normal": int(sum(receipts[name]["num_normal"] for name in names)),
        "class_counts": dict(zip(class_set.codes, class_counts.tolist())),
        "class_frequencies": {code: round(n / total, 6) for code, n in zip(class_set.codes, class_counts.tolist())},
        "source": {"csv": os.path.abspath(source.csv_path), "images": os.path.abspath(source.image_dir)},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(os.path.join(split_dir, tfrecords.INFO_FILE), info)  # last: marks the split complete
    return info


def build_parser():
    parser = cli.parser("sfr-jax prepare", __doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["sewerml", "wzpipe"],
                        help="the raw data set (`sfr-jax prepare reviewed --help`: reviewed inspection videos)")
    parser.add_argument("--root", required=True, help="raw data folder (CSV files and the image folder)")
    parser.add_argument("--out", required=True, help="output folder; gets one sub-folder per split")
    parser.add_argument("--images", default=None, help="image folder (default: found under --root)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--image-size", type=int, default=224, help="stored size (square)")
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg", dest="image_format")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--resize", choices=RESIZE_CHOICES, default="reference",
                        help="PIL filter; reference: bicubic for train, bilinear for test (the reference's transforms)")
    parser.add_argument("--shard-size", type=int, default=1024, help="images per shard")
    parser.add_argument("--class-set", default=None, help="class set name or file (default: the data set's)")
    parser.add_argument("--val-fraction", type=float, default=0.0,
                        help="carve a 'val' split (for `sfr-jax calibrate`) from the training CSV: its last "
                             "fraction of rows by file name; 0: none")
    parser.add_argument("--keep-unseen", action="store_true",
                        help="keep training images with unseen labels (closed-set training; not the ZSL protocol)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


@cli.verb("sfr-jax prepare")
def main(argv) -> int:
    """Entry point of `sfr-jax prepare`."""
    args = build_parser().parse_args(argv)
    if args.image_size <= 0 or args.shard_size <= 0 or not 1 <= args.quality <= 100 or args.workers < 1:
        raise InputError(f"--image-size and --shard-size must be positive, --quality in 1..100 and --workers >= 1 "
                         f"(got {args.image_size}, {args.shard_size}, {args.quality}, {args.workers})")
    class_set = load_class_set(args.class_set or args.dataset)
    sources = raw.find_sources(args.dataset, args.root, args.images)
    if args.val_fraction:
        sources = raw.with_validation(sources, args.val_fraction)
    ensure_dir(args.out)
    options = {"dataset": args.dataset, "image_size": args.image_size, "image_format": args.image_format,
               "quality": args.quality, "shard_size": args.shard_size, "codes": list(class_set.codes),
               "zero_shot": not args.keep_unseen, "resize": args.resize}
    runner, failed = _Runner(args.workers), True
    try:
        for source in sources:
            info = prepare_split(source, args.out, dataset=args.dataset, class_set=class_set, options=options,
                                 runner=runner, progress=not args.no_progress)
            print(f"{source.name}: {info['num_examples']} images in {len(info['shards'])} shards, "
                  f"{info['num_rejected']} rejected (rejects.csv), {info['dropped_unseen']} dropped for "
                  f"unseen labels -> {os.path.join(args.out, source.name)}")
        failed = False
    finally:
        runner.close(failed)
    return 0
