"""Model FLOPs counted from a jaxpr: 2*M*N*K of every matmul and convolution, loop bodies times their trip
count. XLA's cost analysis counts a scanned layer stack's body once, so it undercounts scanned models;
this count does not, and needs no backend support (GPU cost analysis gives none)."""
from __future__ import annotations

import jax
import numpy as np


def _subjaxprs(params):
    for value in params.values():
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if hasattr(v, "eqns"):
                yield v
            elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
                yield v.jaxpr


def matmul_flops(jaxpr) -> float:
    """2*M*N*K of every dot_general and convolution of a jaxpr (~99% of a ViT's work); a scan body counts
    `length` times, a cond its costliest branch."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            k = np.prod([eqn.invars[0].aval.shape[i] for i in contract])
            total += 2.0 * np.prod(eqn.outvars[0].aval.shape) * k
        elif name == "conv_general_dilated":
            rhs, spec = eqn.invars[1].aval.shape, eqn.params["dimension_numbers"].rhs_spec
            k = rhs[spec[1]] * np.prod([rhs[i] for i in spec[2:]])
            total += 2.0 * np.prod(eqn.outvars[0].aval.shape) * k
        subs = [matmul_flops(j) for j in _subjaxprs(eqn.params)]
        if subs:
            sub = max(subs) if name == "cond" else sum(subs)
            total += sub * (eqn.params["length"] if name == "scan" else 1)
    return total


def function_flops(fn, *args) -> float:
    """Matmul FLOPs of one call fn(*args), traced only (nothing is compiled or run)."""
    return matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)
