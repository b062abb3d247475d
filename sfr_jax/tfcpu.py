"""TensorFlow for the host's input work only: imported on first use, with every GPU hidden from it, since
the accelerators belong to JAX (TensorFlow would otherwise reserve their memory)."""
from __future__ import annotations

import functools
import os


@functools.cache
def tf_cpu():
    """The tensorflow module, with no GPU visible to it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised: only fine if it sees no GPU
        if tf.config.get_visible_devices("GPU"):
            raise RuntimeError("TensorFlow was initialised with a visible GPU before sfr_jax hid it") from None
    return tf
