"""GR graph and GCN vs a PyTorch re-computation of the reference's build_adjacency and GCN (SPEC §4)."""
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from sfr_jax.config import base_config
from sfr_jax.models.graph import ADJACENCY_THRESHOLD, GCN, adjacency
from sfr_jax.models.sfr import SFRConfig


def torch_adjacency(features, threshold):
    """SPEC §4 in torch: A = cos > threshold, diagonal forced to 1, D^-1/2 A D^-1/2."""
    t = torch.nn.functional.normalize(torch.as_tensor(features), p=2, dim=1)
    a = (t @ t.t() > threshold).float()
    a = a - torch.eye(len(a))
    a[a < 0] = 0
    a = a + torch.eye(len(a))
    d = torch.diag(torch.pow(a.sum(1), -0.5))
    return (d @ a @ d).numpy()


def clustered_features(seed=0, n=9, dim=16):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim))
    return (centres[np.arange(n) % 3] + 0.35 * rng.normal(size=(n, dim))).astype(np.float32)


def test_adjacency_matches_torch_reference():
    f = clustered_features()
    for threshold in (0.85, 0.6, 0.0):
        want = torch_adjacency(f, threshold)
        got_np = adjacency(f, threshold)
        got_jnp = adjacency(jnp.asarray(f), threshold)
        assert isinstance(got_np, np.ndarray) and got_np.dtype == np.float32
        np.testing.assert_allclose(got_np, want, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.asarray(got_jnp), want, rtol=1e-6, atol=1e-7)
    a = adjacency(f, 0.6)
    assert np.count_nonzero(a - np.diag(np.diag(a))) > 0  # the case has real edges
    np.testing.assert_allclose(a, a.T)


def test_adjacency_hand_case():
    # two identical features and one orthogonal: edge 0-1, self-loops everywhere
    f = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_allclose(adjacency(f), [[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]], rtol=1e-6)
    # a strict '>' : cosine exactly at the threshold is no edge
    np.testing.assert_allclose(adjacency(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), threshold=0.0), np.eye(2))


def test_gcn_matches_torch_and_dropout_is_nnx_style():
    gcn = GCN(hidden=64, dropout=0.5, rngs=nnx.Rngs(0))
    w1, w2 = np.array(gcn.gc1.weight[...]), np.array(gcn.gc2.weight[...])
    assert w1.shape == (1, 64) and w2.shape == (64, 1)
    bound = np.sqrt(6 / (1 + 64))  # Xavier-uniform for a 1x64 / 64x1 matrix
    assert np.abs(w1).max() <= bound and np.abs(w2).max() <= bound and np.abs(w1).max() > 0.5 * bound
    a = adjacency(clustered_features(1, n=6), 0.6)
    s = np.random.default_rng(2).normal(size=(4, 6)).astype(np.float32)
    x = torch.as_tensor(s)[..., None]
    at = torch.as_tensor(a)
    want = (at @ torch.relu(at @ x @ torch.as_tensor(w1)) @ torch.as_tensor(w2))[..., 0].numpy()
    gcn.eval()
    np.testing.assert_allclose(np.asarray(gcn(jnp.asarray(s), a)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(gcn(jnp.asarray(s), a)), np.asarray(gcn(jnp.asarray(s), a)))
    gcn.train()  # dropout on: a fresh mask per call from the module's 'dropout' stream
    y1, y2 = np.asarray(gcn(jnp.asarray(s), a)), np.asarray(gcn(jnp.asarray(s), a))
    assert not np.allclose(y1, want) and not np.allclose(y1, y2)


def test_the_threshold_is_the_reference_one_everywhere():
    """SPEC §4's 0.85 (the reference's `> 0.85`): the graph's default, the model's and the run config's
    (the config sits in a layer below models, so it cannot read the constant: this keeps them one)."""
    assert ADJACENCY_THRESHOLD == 0.85
    assert SFRConfig().adjacency_threshold == base_config().model.adjacency_threshold == ADJACENCY_THRESHOLD
