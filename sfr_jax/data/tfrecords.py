"""The on-disk format of prepared splits: TFRecord shards of tf.train.Example, TFDS metadata, metadata.json.

A split folder (out/train, out/test) is a TFDS dataset folder (`tfds.builder_from_directory(folder)` reads
it; TFDS owns dataset_info.json and features.json there) plus our metadata.json (counts, class
frequencies, options, shard list). metadata.json is written last: a split without it is unfinished.
Example features: image (encoded JPEG/PNG bytes of the stored size), filename (bytes), labels (int64 [C],
class-set order).
"""
from __future__ import annotations

import json
import os

import numpy as np

from sfr_jax.errors import MissingInput
from sfr_jax.tfcpu import tf_cpu

INFO_FILE = "metadata.json"
TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"


def shard_name(dataset: str, split: str, index: int, count: int) -> str:
    """The TFDS-style file name of shard `index` of `count` (matches TEMPLATE)."""
    return f"{dataset}-{split}.tfrecord-{index:05d}-of-{count:05d}"


def serialize(image: bytes, filename: str, labels) -> bytes:
    """One tf.train.Example as bytes (map keys sorted: the same bytes in every process)."""
    tf = tf_cpu()

    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        "filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode("utf-8")])),
        "labels": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in labels])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def feature_spec(num_classes: int) -> dict:
    """tf.io.parse_example description of the stored features."""
    tf = tf_cpu()

    return {
        "image": tf.io.FixedLenFeature([], tf.string),
        "filename": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.FixedLenFeature([num_classes], tf.int64),
    }


def read_info(split_dir: str) -> dict:
    """The metadata.json of a prepared split; a clear error when the split is missing or unfinished."""
    path = os.path.join(split_dir, INFO_FILE)
    if not os.path.exists(path):
        raise MissingInput(
            f"{split_dir}: no {INFO_FILE}; not a prepared split (run `sfr-jax prepare`), or preparation did not finish")
    with open(path) as handle:
        return json.load(handle)


def shard_paths(split_dir: str, info: dict) -> list:
    """Absolute paths of the split's shards, in order."""
    return [os.path.join(split_dir, name) for name in info["shards"]]


def write_tfds_metadata(split_dir: str, *, dataset: str, split: str, shard_lengths, image_size: int,
                        image_format: str, codes) -> None:
    """Register the shards of one split as a TFDS dataset folder (features.json, dataset_info.json)."""
    tf_cpu()
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(image_size, image_size, 3), encoding_format=image_format),
        "filename": tfds.features.Text(),
        "labels": tfds.features.Tensor(shape=(len(codes),), dtype=np.int64),
    })
    num_bytes = sum(os.path.getsize(os.path.join(split_dir, shard_name(dataset, split, i, len(shard_lengths))))
                    for i in range(len(shard_lengths)))
    template = tfds.core.ShardedFileTemplate(data_dir=split_dir, template=TEMPLATE, dataset_name=dataset,
                                             split=split, filetype_suffix="tfrecord")
    tfds.folder_dataset.write_metadata(
        data_dir=split_dir,
        features=features,
        split_infos=[tfds.core.SplitInfo(name=split, shard_lengths=list(shard_lengths), num_bytes=num_bytes,
                                         filename_template=template)],
        filename_template=template,
        check_data=False,
        description=f"{dataset} {split} split prepared by sfr-jax; labels in class order {' '.join(codes)}",
    )
