"""TensorFlow for the host's input work only: imported on first use, with every GPU hidden from it, since
the accelerators belong to JAX (TensorFlow would otherwise reserve their memory), and without the lines its
C++ start-up writes to stderr on every calibrate / prepare (oneDNN, CPU features: they are not ours to say,
and TF_CPP_MIN_LOG_LEVEL does not reach them: absl logs them before its log is initialised)."""
from __future__ import annotations

import functools
import os
import re
import sys
import tempfile

# What TensorFlow's import writes to stderr and the user cannot act on; any other line is passed through.
_NOISE = re.compile(r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
                    r"cpu_feature_guard|rebuild TensorFlow with the appropriate compiler flags|"
                    r"^To enable the following instructions")


def _import_quietly():
    """`import tensorflow` with the process's stderr (fd 2, where C++ writes) caught and replayed without
    the _NOISE lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not _NOISE.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return tf


@functools.cache
def tf_cpu():
    """The tensorflow module, with no GPU visible to it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = sys.modules.get("tensorflow") or _import_quietly()
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised: only fine if it sees no GPU
        if tf.config.get_visible_devices("GPU"):
            raise RuntimeError("TensorFlow was initialised with a visible GPU before sfr_jax hid it") from None
    return tf
