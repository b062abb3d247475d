"""The speed switches of the CLIP towers change how, not what, is computed: scanned vs unrolled layers,
rematerialisation, padded fused attention. Same outputs, same gradients, same dropout masks, same names."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sfr_jax.models.clip import CLIP, CLIPConfig, Runtime, TextConfig, VisionConfig, fused_attention
from sfr_jax.models.rs import RSConfig

CFG = CLIPConfig(VisionConfig(32, 64, 3, 2, 32, 8), TextConfig(32, 64, 3, 2), 24)
IDS = jnp.asarray([[49406, 5, 6, 7, 49407, 0, 0, 0], [49406, 9, 49407, 0, 0, 0, 0, 0]], jnp.int32)
PIXELS = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))


def _model(rs=RSConfig(dropout=0.3), **kwargs):
    model = CLIP(CFG, rs, runtime=Runtime(**kwargs), rngs=nnx.Rngs(params=0, dropout=1))
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):  # `up` starts at zero: make it matter
        if "up" in [str(p) for p in path]:
            var.set_value(0.2 * jax.random.normal(jax.random.key(len(path)), var.get_value().shape))
    model.train()
    return model


def _loss(model):
    return jnp.sum(jnp.tanh(model.encode_image(PIXELS))) + jnp.sum(jnp.tanh(model.encode_text(IDS)))


def _run(model):
    """Loss and adapter gradients of two successive calls (dropout masks must advance between them)."""
    is_adapter = nnx.All(nnx.Param, nnx.PathContains("adapter"))
    out = []
    for _ in range(2):
        loss, grads = nnx.jit(nnx.value_and_grad(_loss, argnums=nnx.DiffState(0, is_adapter)))(model)
        out.append((float(loss), grads))
    return out


def _assert_same(a, b, rtol=1e-5):
    for (la, ga), (lb, gb) in zip(a, b):
        np.testing.assert_allclose(la, lb, rtol=rtol)
        fa, fb = nnx.to_flat_state(ga), nnx.to_flat_state(gb)
        assert [p for p, _ in fa] == [p for p, _ in fb]
        for (path, x), (_, y) in zip(fa, fb):
            x, y = np.asarray(x.get_value()), np.asarray(y.get_value())
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max(), err_msg=str(path))


@pytest.fixture(scope="module")
def unrolled():
    return _run(_model(scan_layers=False))


def test_dropout_masks_advance_between_calls(unrolled):
    assert unrolled[0][0] != unrolled[1][0]


@pytest.mark.parametrize("kwargs", [dict(scan_layers=True), dict(scan_layers=True, remat="block"),
                                    dict(scan_layers=False, remat="block"), dict(scan_layers=True, remat="dots")])
def test_scan_and_remat_give_the_same_loss_and_gradients(unrolled, kwargs):
    _assert_same(_run(_model(**kwargs)), unrolled)


def test_scan_keeps_parameter_names_and_falls_back_when_blocks_differ():
    scanned, plain = _model(scan_layers=True), _model(scan_layers=False)
    names = lambda m: [p for p, _ in nnx.to_flat_state(nnx.state(m))]  # noqa: E731
    assert names(scanned) == names(plain)
    rs = RSConfig(dropout=0.0, layers=(1,))  # only block 1 has an adapter: the blocks are not alike
    a, b = _model(rs, scan_layers=True), _model(rs, scan_layers=False)
    np.testing.assert_allclose(float(_loss(a)), float(_loss(b)), rtol=1e-6)
    with pytest.raises(ValueError, match="remat"):
        _model(remat="everything")


@pytest.mark.parametrize("causal", [False, True])
def test_padded_fused_attention_equals_plain_softmax_attention(causal):
    """The cuDNN path pads odd lengths to a multiple of 8 and masks the padding; checked with XLA's kernel."""
    q, k, v = (jax.random.normal(jax.random.key(i), (2, 13, 3, 8)) for i in range(3))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(8)
    if causal:
        logits = jnp.where(jnp.tril(jnp.ones((13, 13), bool)), logits, -jnp.inf)
    ref = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    got = fused_attention(q, k, v, causal, "xla", multiple=8)
    assert got.shape == ref.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda q: jnp.sum(jnp.sin(fused_attention(q, k, v, causal, "xla", multiple=8))))(q)
    ref_grad = jax.grad(lambda q: jnp.sum(jnp.sin(jnp.einsum(
        "bhqk,bkhd->bqhd", jax.nn.softmax(jnp.where(jnp.tril(jnp.ones((13, 13), bool)) | (not causal),
                                                    jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(8), -jnp.inf),
                                          axis=-1), v))))(q)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-4, atol=1e-5)


def test_default_scans_on_cpu_in_train_mode_only():
    """scan_layers=None: the backward pass gains from the scan on XLA:CPU, the forward does not."""
    model = _model()

    def uses_scan(m):
        graphdef, state = nnx.split(m)
        # Fresh Variables at the trace level (dropout advances RNG counters), as train/steps.py does.
        encode = lambda s, x: nnx.merge(graphdef, jax.tree.map(lambda v: v, s)).encode_image(x)  # noqa: E731
        return "scan" in str(jax.make_jaxpr(encode)(state, PIXELS))

    assert uses_scan(model) == (jax.default_backend() == "cpu")
    model.eval()
    assert not uses_scan(model)
