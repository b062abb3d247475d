"""Stopping and resuming: a run stopped (as if preempted) at step k and resumed ends bit-identical to one
that never stopped; a NaN loss stops the run and keeps the last good checkpoint."""
import os
import signal

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


@pytest.mark.parametrize("prefetch", [0, 2])
def test_stopped_and_resumed_equals_uninterrupted(clip_dir, tmp_path, prefetch):
    config = tiny_config(clip_dir, **{"train.epochs": EPOCHS, "data.device_prefetch": prefetch})
    full = loop.train(config, str(tmp_path / "full"), spe=SPE, batches=_batches)
    assert full.status == "done" and full.step == SPE * EPOCHS

    def preempted(start):
        for i, batch in zip(range(start, SPE * EPOCHS), _batches(start)):
            if i == 4:  # a real SIGTERM while batch 4 is read: `prefetch` batches before step 5 would run
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch

    first = loop.train(config, str(tmp_path / "cut"), spe=SPE, batches=preempted)
    # saved after the step in flight, then exited (mid-epoch 2, or at the end of epoch 1 with 2 batches sent
    # ahead); the batches sent ahead are dropped and read again on resume
    assert first.status == "preempted" and first.step == 5 - prefetch
    second = loop.train(config, str(tmp_path / "cut"), spe=SPE, batches=_batches)
    assert second.status == "done" and second.step == SPE * EPOCHS
    assert first.losses + second.losses == full.losses  # bit-identical losses
    for a, b in zip(jax.tree.leaves(_params(full)), jax.tree.leaves(_params(second))):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(jax.tree.map(np.asarray, full.run.opt_state)),
                    jax.tree.leaves(jax.tree.map(np.asarray, second.run.opt_state))):
        np.testing.assert_array_equal(a, b)


def test_stop_at_step_and_resume_past_the_end(clip_dir, tmp_path):
    config = tiny_config(clip_dir, **{"train.epochs": 1, "train.stop_at_step": 2})
    first = loop.train(config, str(tmp_path / "w"), spe=SPE, batches=_batches)
    assert (first.status, first.step) == ("preempted", 2)
    second = loop.train(config, str(tmp_path / "w"), spe=SPE, batches=_batches)
    assert (second.status, second.step, len(second.losses)) == ("done", 3, 1)
    third = loop.train(config, str(tmp_path / "w"), spe=SPE, batches=_batches)  # already complete: no step
    assert (third.status, third.step, third.losses) == ("done", 3, [])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(clip_dir, tmp_path):
    config = tiny_config(clip_dir, **{"train.epochs": EPOCHS})

    def poisoned(start):
        for i in range(start, SPE * EPOCHS):
            b = random_batch(16, seed=i)
            if i == 4:
                b["labels"][:] = np.nan
            yield b

    with pytest.raises(loop.NonFiniteLoss, match="step 5.*last good checkpoint \\(step 3\\)"):
        loop.train(config, str(tmp_path / "nan"), spe=SPE, batches=poisoned)
    from sfr_jax.checkpoints import Checkpoints
    assert Checkpoints(str(tmp_path / "nan"), read_only=True).steps() == [3]


def _damage(step_dir):
    """Overwrite every data file of a saved step with garbage, as a failing disk might."""
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for name in files:
            if name not in ("_METADATA", "_sharding", "commit_success.txt"):
                with open(os.path.join(root, name), "wb") as f:
                    f.write(os.urandom(64))


def test_a_damaged_newest_step_is_set_aside_and_the_run_heals(clip_dir, tmp_path, capfd):
    config = tiny_config(clip_dir, **{"train.epochs": EPOCHS})
    full = loop.train(config, str(tmp_path / "full"), spe=SPE, batches=_batches)
    workdir = tmp_path / "w"
    loop.train(config, str(workdir), spe=SPE, batches=_batches)
    _damage(workdir / "checkpoints" / str(SPE * EPOCHS))
    capfd.readouterr()
    healed = loop.train(config, str(workdir), spe=SPE, batches=_batches)  # resumes from the step before
    err = capfd.readouterr().err
    assert healed.status == "done" and healed.step == SPE * EPOCHS and len(healed.losses) == SPE
    assert f"checkpoint step {SPE * EPOCHS}" in err and "moved it to" in err
    assert "Event loop is closed" not in err and "Traceback" not in err and len(err.splitlines()) < 20
    aside = os.listdir(workdir / "checkpoints_damaged")
    assert len(aside) == 1 and aside[0].startswith(f"{SPE * EPOCHS}-")  # kept, never deleted
    for a, b in zip(jax.tree.leaves(jax.tree.map(np.asarray, full.run.trainable)),
                    jax.tree.leaves(jax.tree.map(np.asarray, healed.run.trainable))):
        np.testing.assert_array_equal(a, b)  # the healed run ends where the uninterrupted one did
    again = loop.train(config, str(workdir), spe=SPE, batches=_batches)  # and the workdir is whole again
    assert (again.status, again.losses) == ("done", [])


def test_resuming_with_another_model_config_is_refused_naming_the_keys(clip_dir, tmp_path):
    from sfr_jax.errors import ConfigError

    config = tiny_config(clip_dir, **{"train.epochs": 1})
    loop.train(config, str(tmp_path / "w"), spe=SPE, batches=_batches)
    changed = tiny_config(clip_dir, **{"train.epochs": 1, "model.head_hidden": 32, "optim.head_lr": 1e-2})
    with pytest.raises(ConfigError, match=r"model.head_hidden: 16 -> 32, optim.head_lr: 0.003 -> 0.01"):
        loop.train(changed, str(tmp_path / "w"), spe=SPE, batches=_batches)
    longer = tiny_config(clip_dir, **{"train.epochs": 2, "train.log_every": 5})  # resumable keys
    assert loop.train(longer, str(tmp_path / "w"), spe=SPE, batches=_batches).step == 2 * SPE
