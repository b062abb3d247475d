"""Reading prepared splits independently of sfr_jax's pipelines (plain tf.data + PIL), for the data tests."""
import io
import os

import numpy as np
from PIL import Image

from sfr_jax.data import tfrecords
from sfr_jax.tfcpu import tf_cpu


def stored_records(split_dir):
    """{filename: (labels list, encoded image bytes)} of every record of a split; a repeated name fails."""
    tf = tf_cpu()
    info = tfrecords.read_info(split_dir)
    spec = tfrecords.feature_spec(len(info["codes"]))
    out = {}
    for record in tf.data.TFRecordDataset([os.path.join(split_dir, name) for name in info["shards"]]).as_numpy_iterator():
        example = tf.io.parse_single_example(record, spec)
        name = example["filename"].numpy().decode()
        assert name not in out
        out[name] = (example["labels"].numpy().tolist(), example["image"].numpy())
    return out


def decoded_records(split_dir):
    """{filename: (image uint8 decoded with PIL, labels float32)}."""
    return {name: (np.asarray(Image.open(io.BytesIO(encoded))), np.asarray(labels, np.float32))
            for name, (labels, encoded) in stored_records(split_dir).items()}
