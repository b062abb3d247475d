"""Fine-tuning (`train.init_from`): a new run starts from another workdir's trained parameters, not the
initialisation; with a class promoted to seen (as reviewed positives do) the class set of the new run is
the one its workdir records; a workdir without a checkpoint is refused naming the key."""
import json
import os

import jax
import numpy as np
import pytest
import yaml

from sfr_jax.errors import UserError
from sfr_jax.text.classes import sewerml
from sfr_jax.train import loop
from sfr_jax.infer import restore
from sfr_jax.train.run import setup
from train_fixtures import make_tiny_clip_dir, random_batch, tiny_config

SPE = 2


def _train(config, workdir):
    loop.train(config, str(workdir), spe=SPE, batches=lambda s: (random_batch(16, seed=i) for i in range(s, SPE)))
    return restore.restore_step(str(workdir))


def _distance(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in
               zip(jax.tree.leaves(a.trainable), jax.tree.leaves(b.trainable)))


def test_a_run_starts_from_another_workdirs_parameters(tmp_path):
    clip_dir = make_tiny_clip_dir(tmp_path / "clip")
    common = {"train.epochs": 1, "train.best_metric": ""}
    source = _train(tiny_config(clip_dir, **common), tmp_path / "a")
    # FO (unseen in Sewer-ML's protocol) promoted to seen, as reviewed positives of it would
    classes = [{"code": c.code, "phrase": c.phrase, "description": c.description, "seen": c.seen or c.code == "FO"}
               for c in sewerml().classes]
    class_file = tmp_path / "reviewed_classes.yaml"
    class_file.write_text(yaml.safe_dump({"name": "reviewed", "classes": classes}))
    # learning rates so small that one step cannot move the parameters measurably
    tiny_lr = dict(common, **{"optim.clip_lr": 1e-12, "optim.head_lr": 1e-12, "schedule.min_lr": 0.0,
                              "data.class_set": str(class_file)})
    tuned = _train(tiny_config(clip_dir, **tiny_lr, **{"train.init_from": str(tmp_path / "a")}), tmp_path / "b")
    fresh = setup(tiny_config(clip_dir, **tiny_lr), str(tmp_path / "c"), restore=False, spe=SPE)  # initialised
    assert _distance(tuned, source) < 1e-6 < 1e-3 < _distance(fresh, source)
    recorded = json.load(open(tmp_path / "b" / "config.json"))
    assert recorded["data"]["class_set"] == str(class_file)
    assert "FO" in [c.code for c in tuned.parts.class_set.classes if c.seen]
    with pytest.raises(UserError, match="train.init_from=.*no readable checkpoint|train.init_from=.*not a trained"):
        os.makedirs(tmp_path / "empty")
        _train(tiny_config(clip_dir, **common, **{"train.init_from": str(tmp_path / "empty")}), tmp_path / "d")
