"""The inference side stands on its own: opening a workdir step for predict reads no optimiser state and builds
no training run, gives the arrays training saved, and the import contracts (layers, no library module imports
a verb module, inference never imports train/) hold and catch a planted violation of each."""
import configparser
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from sfr_jax import checkpoints, predict, verbs
from sfr_jax.infer import restore
from sfr_jax.train import optim
from sfr_jax.train import run as run_lib
from train_fixtures import train_tiny_workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPE = 2


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    found = train_tiny_workdir(str(tmp_path_factory.mktemp("infer")), SPE)
    return dict(found, images=os.path.join(os.path.dirname(found["data_dir"]), "raw", "images"))


def test_predict_on_a_workdir_builds_no_training_run_and_reads_no_optimiser_state(trained, monkeypatch, capsys):
    asked = []
    real_restore = checkpoints.Checkpoints.restore

    def spy(self, abstract_state, step=None, partial=False):
        asked.append((sorted(abstract_state), partial))
        return real_restore(self, abstract_state, step, partial)

    def forbidden(*args, **kwargs):
        raise AssertionError("scoring built a piece of a training run")

    monkeypatch.setattr(checkpoints.Checkpoints, "restore", spy)
    monkeypatch.setattr(optim, "make_optimizer", forbidden)
    monkeypatch.setattr(run_lib, "setup", forbidden)
    assert predict.main(["--workdir", trained["workdir"], trained["images"], "--format", "json"]) == 0
    assert '"images"' in capsys.readouterr().out
    assert asked == [(["adjacency", "trainable"], True)]  # never opt_state, never the RNG


def test_a_partial_restore_gives_the_arrays_training_saved(trained):
    """The scoring restore (no optimiser) against the training restore (optimiser and all) of the same step."""
    opened = restore.restore_step(trained["workdir"])
    config = opened.config
    with config.unlocked():
        config.train.global_batch = jax.device_count()
        config.loss.group_size = 0
    full = run_lib.setup(config, trained["workdir"], restore=True, spe=SPE)
    assert opened.step == full.step == SPE
    leaves = jax.tree.leaves(opened.trainable)
    assert leaves and len(leaves) == len(jax.tree.leaves(full.trainable))
    for a, b in zip(leaves, jax.tree.leaves(full.trainable)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(opened.frozen["adjacency"].get_value()),
                                  np.asarray(full.frozen["adjacency"].get_value()))


def test_scoring_a_workdir_imports_nothing_of_train(trained):
    code = ("import sys; from sfr_jax import main; code = main.main(['predict', '--workdir', sys.argv[1], "
            "sys.argv[2], '--format', 'csv']); "
            "print(code, sorted(m for m in sys.modules if m.startswith('sfr_jax.train')))")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code, trained["workdir"], trained["images"]], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def _contracts():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO, "setup.cfg"))
    return parser


def test_the_verb_contract_protects_exactly_the_modules_of_the_verb_table():
    listed = _contracts()["importlinter:contract:verbs"]["protected_modules"].split()
    assert sorted(listed) == sorted(verbs.VERB_MODULES)


def _lint(tmp_path, plant_in: str, line: str):
    """lint-imports on a copy of the package with `line` added to the module file `plant_in`."""
    shutil.copytree(os.path.join(REPO, "sfr_jax"), tmp_path / "sfr_jax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "setup.cfg"), tmp_path / "setup.cfg")
    with open(tmp_path / plant_in, "a", encoding="utf-8") as handle:
        handle.write(f"\n{line}  # planted\n")
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    return subprocess.run([lint], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path)))


@pytest.mark.parametrize("plant_in, line, broken", [
    ("sfr_jax/models/graph.py", "from sfr_jax.eval import metrics", "One-way layers"),
    ("sfr_jax/demo/pretrain.py", "import sfr_jax.predict", "No module imports a verb module"),
    ("sfr_jax/predict.py", "import sfr_jax.train.loop", "The inference side does not import train/"),
])
def test_a_planted_violation_of_each_contract_fails(tmp_path, plant_in, line, broken):
    out = _lint(tmp_path, plant_in, line)
    assert out.returncode == 1, out.stdout[-3000:]
    assert f"{broken}" in out.stdout and "BROKEN" in out.stdout.split(broken, 1)[1].splitlines()[0]
    assert out.stdout.count("BROKEN") == 1, out.stdout[-3000:]  # only the contract the plant breaks
