"""TensorFlow's start-up lines (oneDNN, CPU features) do not reach the user of calibrate / prepare; a line
that is not one of them still does. Checked in child processes against a plain `import tensorflow`."""
import subprocess
import sys

from sfr_jax import tfcpu


def _stderr(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stderr


def test_tensorflow_imports_without_its_noise():
    plain = _stderr("import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'; import tensorflow")
    ours = _stderr("from sfr_jax.tfcpu import tf_cpu; tf = tf_cpu(); assert tf.config.get_visible_devices('GPU') == []")
    assert ours.strip() == "", ours
    # what the plain import printed (on this CPU) is all noise by our filter, so nothing of use was hidden
    assert all(tfcpu._NOISE.search(line) for line in plain.splitlines() if line.strip()), plain


def test_the_filter_keeps_other_lines():
    assert tfcpu._NOISE.search("I0000 00:00:1796418236.332094   28934 port.cc:153] oneDNN custom operations are on.")
    assert not tfcpu._NOISE.search("E0000 tensorflow/core/framework/op_kernel.cc:1857] OP_REQUIRES failed")
