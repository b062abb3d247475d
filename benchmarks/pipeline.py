"""Input throughput per CPU core: `prepare` (720x576 PNG -> 224 JPEG record) and the training pipeline
(224 JPEG shards, full SPEC §6 augmentation), each on one thread.

    python benchmarks/pipeline.py [--images 256] [--batch 64] [--steps 20]

Rates are images per CPU-second of this process (all its threads), i.e. per core, so that a shared
machine's load does not distort them; wall-clock rates are printed alongside.
Targets (issue 4): >= 100 images/s/core for prepare, >= 500 images/s/core for the train pipeline.
"""
import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="distinct 720x576 source PNGs")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed training batches (after 3 warm-up)")
    parser.add_argument("--copies", type=int, default=12, help="shard copies, so the pipeline reads enough images")
    args = parser.parse_args(argv)

    import numpy as np
    from PIL import Image

    from sfr_jax.data import pipeline, prepare, synthetic, tfrecords
    from sfr_jax.text.classes import load_class_set

    codes = load_class_set("sewerml").codes
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        image_dir = os.path.join(tmp, "images")
        os.makedirs(image_dir)
        names = []
        for index in range(args.images):
            image, labels, _ = synthetic.make_frame(0, index, draw_size=192, save_size="draw")
            name = f"{index + 1:08d}.png"
            image.resize((720, 576), Image.BILINEAR).save(os.path.join(image_dir, name), compress_level=6)
            names.append(name)
        split_dir = os.path.join(tmp, "train")
        os.makedirs(os.path.join(split_dir, prepare.PROGRESS_DIR))
        task = {"name": "bench-train.tfrecord-00000-of-00001", "split_dir": split_dir, "image_dir": image_dir,
                "filenames": names, "lines": list(range(2, 2 + len(names))),
                "labels": np.random.default_rng(0).integers(0, 2, (len(names), len(codes))).tolist(),
                "image_size": 224, "image_format": "jpeg", "quality": 95, "resize": "bicubic"}
        prepare._write_shard(dict(task, name="warmup"))  # imports and first-call costs
        start, cpu = time.perf_counter(), time.process_time()
        prepare._write_shard(task)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"prepare: {len(names) / cpu:7.1f} images per CPU-second ({len(names) / wall:.1f}/s wall, 1 process; "
              "720x576 PNG -> 224 JPEG q95 record)")

        shard = os.path.join(split_dir, task["name"])
        shards = []
        for copy in range(args.copies):
            name = tfrecords.shard_name("bench", "train", copy, args.copies)
            os.link(shard, os.path.join(split_dir, name))
            shards.append(name)
        tfrecords.write_json(os.path.join(split_dir, tfrecords.INFO_FILE), {
            "dataset": "bench", "split": "train", "codes": list(codes), "shards": shards,
            "shard_lengths": [len(names)] * args.copies, "image_size": 224, "image_format": "jpeg"})
        total = args.steps + 3
        needed = total * args.batch
        if needed > len(names) * args.copies:
            print(f"need {needed} images: raise --copies", file=sys.stderr)
            return 2
        batches = pipeline.train_batches(split_dir, global_batch=args.batch, seed=0, threads=1,
                                         shuffle_buffer=1024, num_steps=total)
        for _ in range(3):
            next(batches)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            next(batches)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        count = args.steps * args.batch
        print(f"train pipeline: {count / cpu:7.1f} images per CPU-second ({count / wall:.1f}/s wall, 1 tf.data "
              f"thread; 224 JPEG, full augmentation, batch {args.batch})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
