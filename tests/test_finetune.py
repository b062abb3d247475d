"""Fine-tuning (`train.init_from`): a new run starts from another workdir's trained parameters, not the
initialisation; with a class promoted to seen (as reviewed positives do) the class set of the new run is
the one its workdir records; a workdir without a checkpoint is refused naming the key. From an export
(`sfr-jax export`'s .pth or Hugging Face folder) it starts from the same parameters as from the workdir it was
exported from; another model shape, another CLIP and a damaged file are refused, naming the file or tensor."""
import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
import yaml

from sfr_jax import main as sfr
from sfr_jax.errors import ConfigError, InputError, UserError
from sfr_jax.exchange import export_main
from sfr_jax.text.classes import sewerml
from sfr_jax.train import finetune, loop
from sfr_jax.infer import restore
from sfr_jax.train.run import setup
from train_fixtures import cli_args, make_synthetic_data, make_tiny_clip_dir, random_batch, tiny_config

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


def test_a_run_starts_from_an_export_as_from_the_workdir_it_came_from(tmp_path):
    """A's .pth export (with and without its sidecar) and HF folder give B the parameters that A's workdir gives."""
    clip_dir = make_tiny_clip_dir(tmp_path / "clip")
    common = {"train.epochs": 1, "train.best_metric": ""}
    source = _train(tiny_config(clip_dir, **common), tmp_path / "a")
    pth, hf = tmp_path / "export" / "a.pth", tmp_path / "export" / "a_hf"
    assert export_main(["--workdir", str(tmp_path / "a"), "--to", str(pth)]) == 0
    assert export_main(["--workdir", str(tmp_path / "a"), "--to", str(hf), "--layout", "hf"]) == 0
    tiny_lr = dict(common, **{"optim.clip_lr": 1e-12, "optim.head_lr": 1e-12, "schedule.min_lr": 0.0})
    tuned = _train(tiny_config(clip_dir, **tiny_lr, **{"train.init_from": str(pth)}), tmp_path / "b")

    def started(source_path, workdir, clip=clip_dir, **overrides):  # a run's parameters before any step
        run = setup(tiny_config(clip, **tiny_lr, **overrides), str(tmp_path / workdir), restore=False, spe=SPE)
        if source_path:
            finetune.start_from(run, str(source_path))
        return run

    bare = tmp_path / "bare" / "a.pth"  # without its sidecar: read as a reference SFR-Net checkpoint
    os.makedirs(bare.parent)
    shutil.copy(pth, bare)
    via_workdir, via_hf, via_bare = started(tmp_path / "a", "c"), started(hf, "d"), started(bare, "e")
    fresh = started("", "f")
    # the .pth path against the workdir path (restored by Orbax, no export or import involved)
    assert _distance(tuned, source) < 1e-6 and _distance(tuned, via_workdir) < 1e-6
    assert max(_distance(via_hf, source), _distance(via_bare, source)) < 1e-6 < 1e-3 < _distance(fresh, source)

    with pytest.raises(ConfigError, match=r"train.init_from=.*a.pth.*parameter .*\['adapter'\]\['down'\]\['bias'\] "
                                          r"is \(8,\) there, \(4,\) here"):
        started(pth, "g", **{"model.bottleneck_dim": 4})
    other_clip = make_tiny_clip_dir(tmp_path / "clip2", seed=1)  # same shape, other weights
    for model in (pth, tmp_path / "a"):
        with pytest.raises(ConfigError, match=r"train.init_from=.*its frozen CLIP differs from clip_dir's \(CLIP "
                                              r"tensor .*max \|difference\|.*sfr-jax import"):
            started(model, "h", clip=other_clip)
    damaged = tmp_path / "damaged" / "a.pth"  # the export's sidecar beside bytes that are no checkpoint
    os.makedirs(damaged.parent)
    damaged.write_bytes(b"not a checkpoint" * 64)
    shutil.copy(tmp_path / "export" / "a.json", damaged.parent / "a.json")
    with pytest.raises(InputError, match=f"train.init_from: {re.escape(str(damaged))} is not a PyTorch checkpoint"):
        started(damaged, "i")


def test_a_damaged_pth_is_one_line_naming_it(tmp_path, capsys):
    """`sfr-jax train` with init_from a file of garbage bytes (no sidecar: read as a reference checkpoint)."""
    clip_dir, data = make_tiny_clip_dir(tmp_path / "clip"), make_synthetic_data(str(tmp_path / "data"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(range(256)) * 8)
    code = sfr.main(["train", *cli_args(clip_dir, data, tmp_path / "w", f"--config.train.init_from={bad}")])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(f"train.init_from: {re.escape(str(bad))} is not a PyTorch checkpoint", lines[-1]), lines[-1:]
