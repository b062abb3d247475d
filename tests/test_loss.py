"""SCL loss vs hand-computed cases and a PyTorch re-implementation of the reference formula (SPEC §5)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sfr_jax.train.loss import mmc_loss, rank_loss, scl_loss


def torch_scl(logits, mask, temperature=0.1, margin=0.2, gamma=10.0):
    """The reference's SynergisticContrastiveLoss, re-written here from SPEC §5 with its edge cases."""
    logits, mask = torch.as_tensor(logits, dtype=torch.float32), torch.as_tensor(mask, dtype=torch.float32)
    flat, m = logits.reshape(-1) / temperature, mask.reshape(-1)
    flat = flat - flat.max().detach()
    log_prob = flat - torch.log(torch.exp(flat).sum())
    mmc = torch.tensor(0.0) if m.sum() < 1e-6 else -(m * log_prob).sum() / m.sum()
    abnormal = mask.sum(dim=1) > 0
    rank = torch.tensor(0.0)
    if abnormal.any():
        la, ma = logits[abnormal], mask[abnormal]
        neg = torch.where(ma == 0, la, torch.tensor(-1e9))
        hard = neg.max(dim=1, keepdim=True)[0]
        lm = torch.clamp(margin + hard - la, min=0) * ma
        rank = torch.tensor(0.0) if ma.sum() < 1e-6 else lm.sum() / ma.sum()
    return float(mmc + gamma * rank)


def hand_scl(logits, labels, t=0.1, margin=0.2, gamma=10.0):
    """Plain-Python loops over entries: the definition in words, nothing vectorised."""
    flat = [x / t for row in logits for x in row]
    lse = math.log(sum(math.exp(x) for x in flat))
    pos = [(i, j) for i, row in enumerate(labels) for j, y in enumerate(row) if y == 1]
    mmc = 0.0 if not pos else -sum(logits[i][j] / t - lse for i, j in pos) / len(pos)
    hinge = 0.0
    for i, j in pos:
        negs = [logits[i][k] for k, y in enumerate(labels[i]) if y == 0]
        hardest = max(negs) if negs else -1e9
        hinge += max(0.0, margin + hardest - logits[i][j])
    rank = 0.0 if not pos else hinge / len(pos)
    return mmc + gamma * rank


CASES = {
    "mixed": ([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]], [[1, 0, 0], [0, 1, 1]]),
    "no_positives": ([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]], [[0, 0, 0], [0, 0, 0]]),
    "normal_row": ([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6], [2.0, 1.0, 0.0]], [[1, 0, 1], [0, 0, 0], [0, 1, 0]]),
    "row_without_negatives": ([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]], [[1, 1, 1], [0, 1, 0]]),
    "all_positive": ([[0.3, -0.2], [0.1, 0.4]], [[1, 1], [1, 1]]),
    "ties": ([[0.5, 0.5, 0.5], [0.2, 0.2, 0.9]], [[1, 0, 0], [0, 1, 0]]),
    "all_equal": ([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[1, 0, 0], [0, 0, 1]]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_scl_matches_hand_and_torch(name):
    logits, labels = CASES[name]
    got = float(scl_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(labels)))
    np.testing.assert_allclose(got, hand_scl(logits, labels), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, torch_scl(logits, labels), rtol=1e-5, atol=1e-5)


def test_edge_values():
    z = jnp.asarray(CASES["mixed"][0], jnp.float32)
    assert float(scl_loss(z, jnp.zeros((2, 3)))) == 0.0  # no positive anywhere
    # rows without negatives add no hinge, but their positives still count in the denominator
    np.testing.assert_allclose(float(rank_loss(z, jnp.ones((2, 3)))), 0.0)
    one = jnp.asarray([[1, 0, 0], [1, 1, 1]])
    hinge = max(0.0, 0.2 + 0.5 - 0.3)  # only row 0 has a negative; 4 positives in all
    np.testing.assert_allclose(float(rank_loss(z, one)), hinge / 4, rtol=1e-6)
    # ties: the hardest negative equals the positive -> hinge = margin
    np.testing.assert_allclose(float(rank_loss(jnp.zeros((1, 3)), jnp.asarray([[1, 0, 0]]))), 0.2, rtol=1e-6)
    # MMC alone: uniform logits -> -log(1 / (B*C))
    np.testing.assert_allclose(float(mmc_loss(jnp.zeros((2, 3)), jnp.asarray([[1, 0, 0], [0, 0, 1]]))),
                               math.log(6), rtol=1e-6)


def test_random_batches_match_torch():
    rng = np.random.default_rng(0)
    for _ in range(5):
        logits = rng.normal(size=(16, 12)).astype(np.float32)
        labels = (rng.random((16, 12)) < 0.15).astype(np.float32)
        labels[:3] = 0  # normal images
        labels[3] = 1  # an image without negatives
        got = float(jax.jit(scl_loss)(logits, labels))
        np.testing.assert_allclose(got, torch_scl(logits, labels), rtol=1e-5, atol=1e-5)


def test_gradient_is_finite_without_positives_and_matches_torch():
    grad = jax.jit(jax.grad(scl_loss))
    assert np.all(np.asarray(grad(jnp.ones((2, 3)), jnp.zeros((2, 3)))) == 0)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 5)).astype(np.float32)  # continuous: no ties in the hardest negative
    labels = (rng.random((6, 5)) < 0.3).astype(np.float32)
    labels[0] = 0
    t = torch.tensor(logits, requires_grad=True)
    flat = t.reshape(-1) / 0.1
    lab = torch.tensor(labels)
    mmc = -(lab.reshape(-1) * torch.log_softmax(flat, 0)).sum() / lab.sum()
    hard = torch.where(lab == 0, t, torch.tensor(-1e9)).max(dim=1, keepdim=True)[0]
    rank = (torch.clamp(0.2 + hard - t, min=0) * lab).sum() / lab.sum()
    (mmc + 10 * rank).backward()
    np.testing.assert_allclose(np.asarray(grad(logits, labels)), t.grad.numpy(), rtol=1e-4, atol=1e-5)
