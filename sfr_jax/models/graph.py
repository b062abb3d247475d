"""GR: the semantic class graph and the 2-layer dense GCN that refines scores over it (SPEC §4)."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

ADJACENCY_THRESHOLD = 0.85  # SPEC §4: classes whose phrase features have a cosine above this are neighbours


def adjacency(text_features, threshold: float = ADJACENCY_THRESHOLD):
    """A_hat = D^-1/2 A D^-1/2 with A = (cos(T, T) > threshold), diagonal forced to 1, [C, C] fp32.

    Numpy in -> numpy out (start-up, outside jit); a jax array in -> jax array out.
    """
    xp = np if isinstance(text_features, np.ndarray) else jnp
    t = xp.asarray(text_features, dtype=xp.float32)
    t = t / xp.maximum(xp.linalg.norm(t, axis=-1, keepdims=True), 1e-12)  # as torch's F.normalize
    a = (t @ t.T > threshold).astype(xp.float32)
    eye = xp.eye(a.shape[0], dtype=xp.float32)
    a = a * (1 - eye) + eye  # self-loops exactly once, whatever the cosine of a feature with itself rounds to
    d_inv_sqrt = 1.0 / xp.sqrt(a.sum(axis=1))  # row sums >= 1 thanks to the self-loops
    return d_inv_sqrt[:, None] * a * d_inv_sqrt[None, :]


class GraphConvolution(nnx.Module):
    """out = A_hat @ x @ W, W: [in, out], no bias, Xavier-uniform (as torch's nn.init.xavier_uniform_)."""

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        init = jax.nn.initializers.glorot_uniform()
        self.weight = nnx.Param(init(rngs.params(), (in_features, out_features), jnp.float32))

    def __call__(self, x, adj):
        return jnp.matmul(jnp.matmul(adj, x), self.weight[...])


class GCN(nnx.Module):
    """Scores as node features: S -> gc2(dropout(relu(gc1(S, A))), A); [B, C] in, [B, C] out."""

    def __init__(self, hidden: int = 64, dropout: float = 0.5, *, rngs: nnx.Rngs):
        self.gc1 = GraphConvolution(1, hidden, rngs=rngs)
        self.gc2 = GraphConvolution(hidden, 1, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, scores, adj):
        x = scores[..., None].astype(jnp.float32)
        x = self.dropout(jax.nn.relu(self.gc1(x, adj)))
        return self.gc2(x, adj)[..., 0]
