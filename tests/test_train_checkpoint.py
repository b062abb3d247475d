"""Checkpoint folder behaviour: corrupted latest -> previous with a warning; unfinished writes ignored; retention."""
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sfr_jax import parallel
from sfr_jax.train.checkpoint import CheckpointError, Checkpoints, abstract


def _state(v):
    return {"trainable": {"w": jnp.full((4, 3), float(v))}, "step": jnp.int32(v)}


def _target(mesh):
    tree = _state(0)
    return abstract(tree, jax.tree.map(lambda _: parallel.replicated(mesh), tree))


def test_corrupted_latest_falls_back_to_previous_with_warning(tmp_path, caplog):
    mesh = parallel.make_mesh()
    ckpt = Checkpoints(str(tmp_path), keep=5)
    for step in (1, 2, 3):
        ckpt.save(step, _state(step), {"step": step})
    ckpt.close()
    # Corrupt every data file of step 3 (truncate to garbage), as a crash of the file system might.
    for root, _, files in os.walk(tmp_path / "checkpoints" / "3" / "state"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"\x00garbage")
    ckpt = Checkpoints(str(tmp_path), keep=5)
    with caplog.at_level(logging.WARNING):
        state, meta, step = ckpt.restore(_target(mesh))
    assert step == 2 and meta["step"] == 2
    np.testing.assert_array_equal(np.asarray(state["trainable"]["w"]), np.full((4, 3), 2.0))
    assert any("step 3" in r.getMessage() and "falling back" in r.getMessage() for r in caplog.records)
    with pytest.raises(CheckpointError, match="no checkpoint of step 7"):
        ckpt.restore(_target(mesh), step=7)
    ckpt.close()


def test_unfinished_write_is_not_a_step_and_retention_keeps_last_and_best(tmp_path):
    mesh = parallel.make_mesh()
    ckpt = Checkpoints(str(tmp_path), keep=2, best_metric="zsl/mAP")
    for step, m in ((1, 0.5), (2, 0.9), (3, 0.1), (4, 0.2)):
        ckpt.save(step, _state(step), {"step": step}, metrics={"zsl/mAP": m})
    ckpt.close()
    # A write killed half-way leaves only a temporary folder behind.
    os.makedirs(tmp_path / "checkpoints" / "5.orbax-checkpoint-tmp-123" / "state")
    ckpt = Checkpoints(str(tmp_path), keep=2, best_metric="zsl/mAP")
    assert ckpt.steps() == [2, 3, 4] and ckpt.best_step() == 2
    _, meta, step = ckpt.restore(_target(mesh))
    assert step == 4
    ckpt.close()
