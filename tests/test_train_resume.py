"""Stopping and resuming: a run stopped (as if preempted) at step k and resumed ends bit-identical to one
that never stopped; a NaN loss stops the run and keeps the last good checkpoint."""
import jax
import numpy as np
import pytest

from sfr_jax.train import loop
from train_fixtures import make_tiny_clip_dir, random_batch, tiny_config

SPE, EPOCHS = 3, 2


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny")


def _batches(start):
    return (random_batch(16, seed=i) for i in range(start, SPE * EPOCHS))


def _params(result):
    return jax.tree.map(np.asarray, result.run.trainable)


def test_stopped_and_resumed_equals_uninterrupted(clip_dir, tmp_path):
    config = tiny_config(clip_dir, **{"train.epochs": EPOCHS})
    full = loop.train(config, str(tmp_path / "full"), spe=SPE, batches=_batches)
    assert full.status == "done" and full.step == SPE * EPOCHS

    config.train.stop_at_step = 4  # mid-epoch: behaves as if SIGTERM arrived after step 4
    first = loop.train(config, str(tmp_path / "cut"), spe=SPE, batches=_batches)
    assert first.status == "preempted" and first.step == 4
    second = loop.train(config, str(tmp_path / "cut"), spe=SPE, batches=_batches)
    assert second.status == "done" and second.step == SPE * EPOCHS
    assert first.losses + second.losses == full.losses  # bit-identical losses
    for a, b in zip(jax.tree.leaves(_params(full)), jax.tree.leaves(_params(second))):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(jax.tree.map(np.asarray, full.run.opt_state)),
                    jax.tree.leaves(jax.tree.map(np.asarray, second.run.opt_state))):
        np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(clip_dir, tmp_path):
    config = tiny_config(clip_dir, **{"train.epochs": EPOCHS})

    def poisoned(start):
        for i in range(start, SPE * EPOCHS):
            b = random_batch(16, seed=i)
            if i == 4:
                b["image"][:] = np.nan
            yield b

    with pytest.raises(loop.NonFiniteLoss, match="step 5.*last good checkpoint \\(step 3\\)"):
        loop.train(config, str(tmp_path / "nan"), spe=SPE, batches=poisoned)
    from sfr_jax.train.checkpoint import Checkpoints
    assert Checkpoints(str(tmp_path / "nan"), read_only=True).steps() == [3]
