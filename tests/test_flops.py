"""Model FLOPs from a jaxpr, against hand-computed 2*M*N*K counts."""
import jax
import jax.numpy as jnp
import numpy as np

from sfr_jax.train.flops import function_flops


def test_matmul_and_convolution_by_hand():
    a, b = jnp.ones((4, 5)), jnp.ones((5, 6))
    assert function_flops(jnp.dot, a, b) == 2 * 4 * 6 * 5
    x, w = jnp.ones((2, 7, 16, 16)), jnp.ones((3, 7, 3, 3))  # NCHW: 2 images 16x16x7; OIHW: 3 kernels 3x3x7
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID")  # noqa: E731
    assert function_flops(conv, x, w) == 2 * (2 * 3 * 14 * 14) * (7 * 3 * 3)
    assert function_flops(lambda a: jnp.tanh(a) + 1, a) == 0  # elementwise work is not counted


def test_scan_body_counts_per_step_and_cond_its_costliest_branch():
    a, b = jnp.ones((4, 5)), jnp.ones((5, 5))

    def scanned(a, b):
        return jax.lax.scan(lambda h, _: (h @ b, None), a, None, length=3)[0]

    assert function_flops(scanned, a, b) == 3 * 2 * 4 * 5 * 5
    assert function_flops(jax.jit(scanned), a, b) == 3 * 2 * 4 * 5 * 5  # inside a jit too

    def branches(p, a, b):
        return jax.lax.cond(p, lambda: (a @ b) @ b, lambda: a)

    assert function_flops(branches, True, a, b) == 2 * (2 * 4 * 5 * 5)
    np.testing.assert_equal(function_flops(jax.grad(lambda b: jnp.sum(a @ b)), b), 2 * (2 * 4 * 5 * 5))
