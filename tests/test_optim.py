"""Optimiser and schedule against independent references: SPEC §6's formula and torch's AdamW/clipping."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sfr_jax import config as cfg
from sfr_jax.train import optim


def spec_lr(base, e):
    """SPEC §6, written out: warm-up for e < 3 from 5e-7, then cosine with period 60 and floor 1e-7."""
    if e < 3:
        return 5e-7 + e * (base - 5e-7) / 3
    return 1e-7 + 0.5 * (base - 1e-7) * (1 + math.cos(math.pi * e / 60))


@pytest.mark.parametrize("base", [5e-6, 1e-3])
def test_epoch_schedule_equals_spec_at_every_epoch(base):
    c = cfg.base_config()
    steps_per_epoch = 7
    sched = jax.jit(optim.schedule(base, optim.OptimConfig.from_config(c), steps_per_epoch))
    for count in range(0, 10 * steps_per_epoch):
        e = count // steps_per_epoch + 1  # reference: scheduler.step(epoch) at the start of epoch 1..10
        np.testing.assert_allclose(float(sched(count)), spec_lr(base, e), rtol=1e-6)
    # after the single cosine cycle: the floor
    np.testing.assert_allclose(float(sched(61 * steps_per_epoch)), 1e-7, rtol=1e-6)


def test_step_schedule_is_continuous_and_meets_epoch_values():
    c = cfg.base_config()
    c.schedule.kind = "step"
    sched = optim.schedule(1e-3, optim.OptimConfig.from_config(c), 10)
    np.testing.assert_allclose(float(sched(0)), 5e-7, rtol=1e-6)
    np.testing.assert_allclose(float(sched(50)), spec_lr(1e-3, 5), rtol=1e-6)
    values = np.array([float(sched(i)) for i in range(0, 100)])
    assert np.all(np.diff(values[:30]) > 0) and np.all(np.diff(values[30:]) < 0)


def test_two_groups_clipping_and_adamw_match_torch():
    """3 steps of our optimiser == torch AdamW (2 param groups) after torch.nn.utils.clip_grad_norm_."""
    c = cfg.base_config()
    c.optim.clip_scaled_like_reference = False
    c.schedule.kind = "step"
    spe = 4
    rng = np.random.default_rng(0)
    params = {"clip": {"adapter": rng.normal(size=(5, 3)).astype(np.float32)},
              "head": {"w": rng.normal(size=(4,)).astype(np.float32)}, "gcn": {"w": rng.normal(size=(2, 2)).astype(np.float32)}}
    grads = [jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32) * s, params) for s in (3.0, 0.1, 5.0)]

    tx = optim.make_optimizer(optim.OptimConfig.from_config(c), spe)
    p = jax.tree.map(jnp.asarray, params)
    state = tx.init(p)
    for g in grads:
        updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, p)
        p = jax.tree.map(lambda a, u: a + u, p, updates)

    tp = {k: {kk: torch.tensor(v, requires_grad=True) for kk, v in d.items()} for k, d in params.items()}
    groups = [{"params": [tp["clip"]["adapter"]], "lr": 0.0}, {"params": [tp["head"]["w"], tp["gcn"]["w"]], "lr": 0.0}]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
    for i, g in enumerate(grads):
        for k, d in tp.items():
            for kk, t in d.items():
                t.grad = torch.tensor(g[k][kk])
        torch.nn.utils.clip_grad_norm_([t for d in tp.values() for t in d.values()], max_norm=1.0)
        opt.param_groups[0]["lr"] = float(optim.schedule(5e-6, optim.OptimConfig.from_config(c), spe)(i))
        opt.param_groups[1]["lr"] = float(optim.schedule(1e-3, optim.OptimConfig.from_config(c), spe)(i))
        opt.step()
    for k, d in tp.items():
        for kk, t in d.items():
            np.testing.assert_allclose(np.asarray(p[k][kk]), t.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_reference_clips_scaled_gradients():
    """AMP quirk: clip_grad_norm_ on GradScaler-scaled grads, then unscale -> effective limit 1 / 2**16."""
    tx = optim.torch_clip_by_global_norm(1.0, optim.grad_scaler_scale)
    g = {"a": jnp.full((4,), 1e-3)}
    out, _ = tx.update(g, tx.init(g))
    scaled = torch.nn.Parameter(torch.zeros(4))
    scaled.grad = torch.full((4,), 1e-3) * 2.0 ** 16  # scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_([scaled], max_norm=1.0)  # the reference clips here, before unscaling
    np.testing.assert_allclose(np.asarray(out["a"]), scaled.grad.numpy() / 2.0 ** 16, rtol=1e-5)
    assert float(optim.grad_scaler_scale(jnp.int32(1999))) == 2.0 ** 16
    assert float(optim.grad_scaler_scale(jnp.int32(2000))) == 2.0 ** 17
