"""Random SFR-Nets with every weight non-trivial (adapters' `up` and the head too), for export/parity tests."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sfr_jax.models.clip import CLIP, CLIPConfig, TextConfig, VisionConfig
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.sfr import Adjacency, ClassTokens, SFRConfig, SFRNet
from sfr_jax.text.classes import ClassSet, DefectClass

TINY = CLIPConfig(VisionConfig(32, 64, 2, 2, 32, 8), TextConfig(32, 64, 2, 2), projection_dim=24)
TINY_SFR = SFRConfig(rs=RSConfig(bottleneck_dim=8), head_hidden=48, gcn_hidden=16)


def random_tokens(rng, n, length=12, vocab=49406):
    """[n, length] ids: start, random body, end (the largest id) at varying positions, zero padding."""
    ids = np.zeros((n, length), np.int32)
    for i in range(n):
        body = rng.integers(1, vocab, size=int(rng.integers(2, length - 2)))
        ids[i, :len(body) + 2] = [49406, *body, 49407]
    return ids


def random_adjacency(rng, c):
    """A symmetric normalised 0/1 graph with self-loops, like GR's A_hat."""
    a = (rng.random((c, c)) > 0.6).astype(np.float32)
    a = np.maximum(a, a.T)
    np.fill_diagonal(a, 1.0)
    d = 1 / np.sqrt(a.sum(1))
    return (d[:, None] * a * d[None, :]).astype(np.float32)


def class_set(n_seen=4, n_unseen=3, name="toy"):
    classes = [DefectClass(f"C{i}", f"phrase {i}", f"a sewer pipe image with defect number {i}", i < n_seen)
               for i in range(n_seen + n_unseen)]
    return ClassSet(name, classes)


def _random_param(rng, name, shape):
    if name.endswith(".scale"):
        return (1 + 0.2 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    if len(shape) <= 1:
        return 0.3 * rng.standard_normal(shape, dtype=np.float32)
    fan_in = shape[-1] if name.endswith(("embedding", "gcn.gc1.weight")) else int(np.prod(shape[:-1]))
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(fan_in ** -0.5)


def random_sfr(clip_config=TINY, sfr_config=TINY_SFR, n_seen=4, n_unseen=3, seed=0, image_size=None):
    """(SFRNet in eval mode, its ClassSet); all weights drawn at a scale where mapping mistakes show.

    The model is built abstractly and filled from numpy: initialising a ViT-B/16 eagerly in JAX is slow."""
    rng = np.random.default_rng(seed)
    c = n_seen + n_unseen
    tokens = random_tokens(rng, c)
    adjacency = random_adjacency(rng, c) if sfr_config.use_gr else None
    abstract = nnx.eval_shape(lambda: SFRNet(
        CLIP(clip_config, sfr_config.rs, image_size=image_size, rngs=nnx.Rngs(seed)), sfr_config, tokens,
        adjacency, rngs=nnx.Rngs(seed + 1)))
    graphdef, state = nnx.split(abstract)
    leaves = []
    for path, var in nnx.to_flat_state(state):
        name = ".".join(str(p) for p in path)
        value = var.get_value()
        if isinstance(var, nnx.Param):
            new = jnp.asarray(_random_param(rng, name, tuple(value.shape)))
        elif isinstance(var, ClassTokens):
            new = jnp.asarray(tokens)
        elif isinstance(var, Adjacency):
            new = jnp.asarray(adjacency)
        elif jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            new = jax.random.key(seed)
        else:
            new = jnp.zeros(value.shape, value.dtype)
        var.set_value(new)
        leaves.append((path, var))
    model = nnx.merge(graphdef, nnx.from_flat_state(leaves))
    model.eval()
    return model, class_set(n_seen, n_unseen)


def random_images(n, size, seed=0):
    """[n, size, size, 3] normalised-looking NHWC float32 images."""
    return np.random.default_rng(seed).standard_normal((n, size, size, 3)).astype(np.float32)


def jax_logits(model, classes, images, modes=("train", "zsl", "gzsl")):
    """{mode: logits} of the JAX model, all modes in one jitted call (eager NNX calls are slow on a CPU)."""
    ids = {mode: classes.ids(mode) for mode in modes}
    run = nnx.jit(lambda m, x: {mode: m(x, i) for mode, i in ids.items()})
    return {mode: np.asarray(v) for mode, v in run(model, jnp.asarray(images)).items()}
