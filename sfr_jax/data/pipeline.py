"""tf.data input pipelines over prepared splits: exactly resumable training batches, complete evaluation.

Each JAX process reads the shards `shards[process_index::process_count]` of a split and makes host-local
batches of global_batch // process_count examples; `to_global` assembles them into global jax.Arrays
sharded over the mesh's 'data' axis.

Train stream: epoch e of process p is a pure function of (seed, e, p): the shard order and the shuffle
buffer are seeded from (seed, e, p), and batch k of the epoch is augmented with a stateless seed derived
from (seed, e, p, k). Global step s is batch s % steps_per_epoch of epoch s // steps_per_epoch, so
`train_batches(..., start_step=s)` resumes exactly (the skipped records are read but not decoded).
steps_per_epoch drops the remainder: min over processes of (its images) // (local batch).

Eval stream: every image exactly once over all processes, in shard order; the last batches are padded
with zero images and mask False so that every process yields the same number of batches.

Images leave both streams as uint8 0..255 (what the reference's PIL images hold before ToTensor): 4x fewer
bytes to copy and to send to the accelerators, and the jitted steps normalise them on the device
(`sfr_jax.train.steps.normalise`, mean/std from config.data).
"""
from __future__ import annotations

import math
import os

import numpy as np

from sfr_jax.data import tfrecords
from sfr_jax.data.augment import ALG, AugConfig, augment_batch
from sfr_jax.errors import ConfigError, InputError
from sfr_jax.tfcpu import tf_cpu


def _process_shards(info: dict, process_index: int, process_count: int):
    """(shard names, image count) read by one process."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    if len(info["shards"]) < process_count:
        raise InputError(f"split {info['dataset']}/{info['split']} has {len(info['shards'])} shards, fewer than "
                         f"{process_count} processes; prepare it again with a smaller --shard-size")
    return info["shards"][process_index::process_count], sum(info["shard_lengths"][process_index::process_count])


def _local_batch(global_batch: int, process_count: int) -> int:
    if global_batch <= 0 or global_batch % process_count:
        raise ConfigError(f"global batch {global_batch} must be a positive multiple of the {process_count} processes")
    return global_batch // process_count


def steps_per_epoch(split_dir: str, global_batch: int, process_count: int = 1) -> int:
    """Training steps per epoch (remainder dropped); the same number on every process."""
    info = tfrecords.read_info(split_dir)
    local = _local_batch(global_batch, process_count)
    steps = min(_process_shards(info, p, process_count)[1] for p in range(process_count)) // local
    if steps == 0:
        raise InputError(f"{split_dir}: too few images per process for a local batch of {local}")
    return steps


def eval_steps(split_dir: str, global_batch: int, process_count: int = 1) -> int:
    """Evaluation batches per process (the largest process's count; others pad)."""
    info = tfrecords.read_info(split_dir)
    local = _local_batch(global_batch, process_count)
    return max(math.ceil(_process_shards(info, p, process_count)[1] / local) for p in range(process_count))


def _decoder(info: dict, image_size: int | None, method: str):
    """Record bytes -> {image [S,S,3] uint8, labels float32 [C]}; resized (rounded to uint8) when S differs
    from the stored size."""
    tf = tf_cpu()
    spec = tfrecords.feature_spec(len(info["codes"]))
    stored = info["image_size"]
    size = image_size or stored
    decode = tf.io.decode_jpeg if info["image_format"] == "jpeg" else tf.io.decode_png

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        image = decode(example["image"], channels=3)
        image = tf.ensure_shape(image, [stored, stored, 3])
        if size != stored:
            image = tf.image.resize(tf.cast(image, tf.float32), [size, size], method=method, antialias=True)
            image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
        return {"image": image, "labels": tf.cast(example["labels"], tf.float32)}

    return parse, size


def _options(tf, threads):
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = True
    if threads:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
    return options


def _epoch_seeds(seed: int, epoch: int, process_index: int):
    """Shard-order rng and shuffle seed of one (seed, epoch, process)."""
    state = np.random.SeedSequence([seed, epoch, process_index, 0x5F3]).generate_state(2, np.uint64)
    return np.random.default_rng(int(state[0])), int(state[1] % (2**63 - 1))


def train_dataset(split_dir: str, *, global_batch: int, epoch: int, seed: int, skip_batches: int = 0,
                  image_size: int | None = None, process_index: int = 0, process_count: int = 1,
                  aug_config: AugConfig = AugConfig(), shuffle_buffer: int = 8192, threads: int | None = None,
                  cycle_length: int = 16):
    """tf.data of one epoch's host batches {image [b,S,S,3] uint8, labels [b,C] f32}, from batch
    skip_batches on. labels hold ALL classes of the class set (select seen ids for training)."""
    tf = tf_cpu()
    info = tfrecords.read_info(split_dir)
    local = _local_batch(global_batch, process_count)
    steps = steps_per_epoch(split_dir, global_batch, process_count)
    if not 0 <= skip_batches <= steps:
        raise ValueError(f"skip_batches {skip_batches} outside [0, {steps}]")
    names, _ = _process_shards(info, process_index, process_count)
    order_rng, shuffle_seed = _epoch_seeds(seed, epoch, process_index)
    files = [os.path.join(split_dir, names[i]) for i in order_rng.permutation(len(names))]
    parse, size = _decoder(info, image_size, "bicubic")

    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(cycle_length, len(files)), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle_buffer > 1:  # (its op seed pairs with TF's global seed: never call tf.random.set_seed)
        ds = ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=False)
    ds = ds.skip(skip_batches * local)  # raw records only: skipped images are never decoded
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(local, drop_remainder=True).take(steps - skip_batches)
    base = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(tf.constant([seed, 0x5F3], tf.int64), epoch, alg=ALG),
        process_index, alg=ALG)
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(skip_batches, steps), ds)

    def augment(step, batch):
        key = tf.random.experimental.stateless_fold_in(base, step, alg=ALG)
        return {"image": augment_batch(batch["image"], key, aug_config), "labels": batch["labels"]}

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(tf, threads))


def train_batches(split_dir: str, *, global_batch: int, seed: int, start_step: int = 0,
                  image_size: int | None = None, process_index: int = 0, process_count: int = 1,
                  aug_config: AugConfig = AugConfig(), shuffle_buffer: int = 8192, num_steps: int | None = None,
                  threads: int | None = None):
    """Host-local numpy training batches for global steps start_step, start_step+1, ... (endless unless
    num_steps): {image [b,S,S,3] uint8, labels [b,C] f32}, b = global_batch // process_count."""
    steps = steps_per_epoch(split_dir, global_batch, process_count)
    step, stop = start_step, None if num_steps is None else start_step + num_steps
    while stop is None or step < stop:
        epoch, skip = divmod(step, steps)
        ds = train_dataset(split_dir, global_batch=global_batch, epoch=epoch, seed=seed, skip_batches=skip,
                           image_size=image_size, process_index=process_index, process_count=process_count,
                           aug_config=aug_config, shuffle_buffer=shuffle_buffer, threads=threads)
        if stop is not None:
            ds = ds.take(stop - step)
        for batch in ds.as_numpy_iterator():
            yield batch
            step += 1


def eval_dataset(split_dir: str, *, global_batch: int, image_size: int | None = None, process_index: int = 0,
                 process_count: int = 1, with_filenames: bool = False, threads: int | None = None):
    """tf.data of host batches {image uint8, labels, mask [b] bool(, filename)}: this process's images in
    shard order, padded with masked zero images to eval_steps(...) batches. No augmentation."""
    tf = tf_cpu()
    info = tfrecords.read_info(split_dir)
    local = _local_batch(global_batch, process_count)
    names, count = _process_shards(info, process_index, process_count)
    total = eval_steps(split_dir, global_batch, process_count) * local
    parse, size = _decoder(info, image_size, "bilinear")
    spec = tfrecords.feature_spec(len(info["codes"]))

    def parse_eval(record):
        element = parse(record)
        element["mask"] = tf.constant(True)
        if with_filenames:
            element["filename"] = tf.io.parse_single_example(record, spec)["filename"]
        return element

    ds = tf.data.TFRecordDataset([os.path.join(split_dir, name) for name in names],
                                 num_parallel_reads=None)  # sequential: keeps shard order
    ds = ds.map(parse_eval, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    pad = {"image": tf.zeros([size, size, 3], tf.uint8), "labels": tf.zeros([len(info["codes"])]),
           "mask": tf.constant(False)}
    if with_filenames:
        pad["filename"] = tf.constant(b"")
    ds = ds.concatenate(tf.data.Dataset.from_tensors(pad).repeat(total - count))
    ds = ds.batch(local, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options(tf, threads))


def eval_batches(split_dir: str, **kwargs):
    """Host-local numpy evaluation batches (see eval_dataset); every image of the split once over all
    processes, mask False on padding."""
    yield from eval_dataset(split_dir, **kwargs).as_numpy_iterator()


def to_global(batch: dict, mesh, axis: str = "data") -> dict:
    """Host-local numpy batch -> global jax.Arrays sharded over `axis` of mesh (string keys are dropped)."""
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    sharding = NamedSharding(mesh, PartitionSpec(axis))
    return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
            for key, value in batch.items() if np.asarray(value).dtype.kind not in "SUO"}
