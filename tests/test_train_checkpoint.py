"""Checkpoint folder behaviour: corrupted latest -> previous with a warning; unfinished writes ignored; retention."""
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sfr_jax import parallel
from sfr_jax.checkpoints import CheckpointError, Checkpoints, abstract


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


SAVER = r"""
import sys
sys.path.insert(0, {repo!r})
import numpy as np
from sfr_jax.checkpoints import Checkpoints
ckpt = Checkpoints({workdir!r}, keep=5)
ckpt.save(1, {{"trainable": {{"w": np.full((4, 3), 1.0, np.float32)}}, "step": np.int32(1)}}, {{"step": 1}})
ckpt.wait()
print("saved 1", flush=True)
big = {{"trainable": {{"w": np.ones((4, 3), np.float32)}}, "step": np.int32(2),
        "filler": np.random.default_rng(0).random((64, 1024, 1024), dtype=np.float32)}}
ckpt.save(2, big, {{"step": 2}})
ckpt.wait()
print("saved 2", flush=True)
"""


def test_a_killed_orbax_save_is_never_a_step(tmp_path):
    """A real Orbax save killed half-way (SIGKILL while its 256 MB step is being written)."""
    import subprocess
    import sys
    import time

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", SAVER.format(repo=repo, workdir=str(tmp_path))],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "saved 1"
    folder, end = tmp_path / "checkpoints", time.time() + 120
    while time.time() < end and not any("tmp" in n for n in os.listdir(folder)):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert any("tmp" in n for n in os.listdir(folder)), "the save was not caught in progress"
    ckpt = Checkpoints(str(tmp_path), keep=5)
    assert ckpt.steps() == [1]
    _, meta, step = ckpt.restore(_target(parallel.make_mesh()))
    assert step == 1 and meta["step"] == 1
    ckpt.close()


def test_a_changed_model_shape_is_reported_as_such_not_as_damage(tmp_path):
    mesh = parallel.make_mesh()
    ckpt = Checkpoints(str(tmp_path), keep=5)
    ckpt.save(1, _state(1), {"step": 1})
    ckpt.close()
    other = {"trainable": {"w": jnp.zeros((4, 5))}, "step": jnp.int32(0)}
    target = abstract(other, jax.tree.map(lambda _: parallel.replicated(mesh), other))
    ckpt = Checkpoints(str(tmp_path), keep=5)
    with pytest.raises(CheckpointError, match=r"does not fit this model .*trainable/w \(4, 3\) vs \(4, 5\).*config changed"):
        ckpt.restore(target)
    assert ckpt.steps() == [1]  # nothing set aside
    ckpt.close()
