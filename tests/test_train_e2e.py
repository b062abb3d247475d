"""End to end on prepared synthetic data: `sfr-jax train` / `eval` / `--dry-run`, 2 processes == 1 process,
and learning (the loss falls over 200 steps)."""
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from sfr_jax import evaluate
from sfr_jax.data import tfrecords
from sfr_jax.train import cli, loop
from sfr_jax.checkpoints import Checkpoints
from sfr_jax.train.run import steps_per_epoch
from train_fixtures import REPO, cli_args, make_synthetic_data, make_tiny_clip_dir


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp("data")))


def _final_trainable(workdir):
    ckdir = os.path.join(workdir, "checkpoints")
    step = max(int(d) for d in os.listdir(ckdir) if d.isdigit())
    path = os.path.join(ckdir, str(step), "state")
    with ocp.PyTreeCheckpointer() as c:
        meta = c.metadata(path).item_metadata.tree
        args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
        tree = c.restore(path, restore_args=args)
    return step, jax.tree.map(np.asarray, tree["trainable"])


@pytest.fixture(scope="module")
def full_run(clip_dir, data_dir, tmp_path_factory):
    """One uninterrupted epoch through the real input pipeline, via `sfr-jax train`."""
    wd = tmp_path_factory.mktemp("full") / "run"
    assert cli.train_main(cli_args(clip_dir, data_dir, wd, "--config.train.epochs=1")) == 0
    return wd


def test_train_then_eval_reproduces_the_table(full_run, data_dir):
    wd = full_run
    step, _ = _final_trainable(str(wd))
    during = json.loads((wd / "eval" / f"step_{step:08d}.json").read_text())
    assert evaluate.eval_main(["--workdir", str(wd), "--step", str(step), "--name", "again"]) == 0
    again = json.loads((wd / "eval" / "again.json").read_text())
    for mode in ("zsl", "gzsl"):
        assert again[mode]["mAP"] == during[mode]["mAP"] and again[mode]["AP"] == during[mode]["AP"]
    info = tfrecords.read_info(os.path.join(data_dir, "test"))
    assert during["num_images"] == sum(info["shard_lengths"])  # every test image exactly once
    assert (wd / "eval" / "again.md").read_text().startswith("# ")
    assert (wd / "train.log").exists() and any((wd / "tensorboard").iterdir())
    assert Checkpoints(str(wd), best_metric="zsl/mAP", read_only=True).best_step() == step


def test_resume_through_the_input_pipeline_is_bit_identical(full_run, clip_dir, data_dir, tmp_path):
    """Stopped mid-epoch, resumed: the pipeline restarts at the saved data position (epoch, batch) and
    the run ends bit-identical to the uninterrupted one."""
    wd = tmp_path / "cut"
    assert cli.train_main(cli_args(clip_dir, data_dir, wd, "--config.train.epochs=1",
                                   "--config.train.stop_at_step=3")) == 0
    assert _final_trainable(str(wd))[0] == 3
    assert cli.train_main(cli_args(clip_dir, data_dir, wd, "--config.train.epochs=1")) == 0
    (step_a, a), (step_b, b) = _final_trainable(str(full_run)), _final_trainable(str(wd))
    assert step_a == step_b
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_dry_run_reports_batch_memory_flops(clip_dir, data_dir, tmp_path, capsys):
    """The model FLOPs count every layer whether the layers are scanned or not (XLA's count, reported beside
    it, sees a scanned stack's body once on large models)."""
    counts = {}
    for scan in ("on", "off"):
        assert cli.train_main(cli_args(clip_dir, data_dir, tmp_path / "dry", "--dry-run",
                                       f"--config.model.scan_layers={scan}")) == 0
        out = capsys.readouterr().out
        assert "per-device batch: 2 (global 16, 8 devices)" in out and "memory per device:" in out
        model = re.search(r"model FLOPs per step \(matmuls and convolutions, every layer\): (\S+)", out)
        xla = re.search(r"XLA cost-analysis FLOPs per step: (\S+)", out)
        counts[scan] = float(model.group(1)), float(xla.group(1))
    assert counts["on"][0] == counts["off"][0] > 0
    assert counts["off"][0] < counts["off"][1], "matmuls are part of all the work XLA counts"
    assert not (tmp_path / "dry" / "checkpoints").exists()


def test_indivisible_batch_fails_clearly(clip_dir, data_dir, tmp_path, capsys):
    assert cli.train_main(cli_args(clip_dir, data_dir, tmp_path / "bad", "--config.train.global_batch=12")) == 2
    assert "train.global_batch=12 is not divisible by the 8 devices" in capsys.readouterr().err


def _launch_local(processes: int, devices_per_process: int, train_args: list, log_dir) -> None:
    """`launch/local.sh` with `processes` x `devices_per_process` CPU devices; its logs on failure."""
    env = dict(os.environ, SFR_JAX_CMD=f"{sys.executable} -m sfr_jax.main train",
               DEVICES_PER_PROCESS=str(devices_per_process), LAUNCH_LOG_DIR=str(log_dir), LAUNCH_TIMEOUT="400",
               PYTHONPATH=REPO)
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(["bash", os.path.join(REPO, "launch", "local.sh"), str(processes), *train_args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=450)
    logs = "".join((log_dir / f"process_{i}.log").read_text() for i in range(processes)
                   if (log_dir / f"process_{i}.log").exists())
    assert proc.returncode == 0, proc.stderr[-3000:] + logs[-5000:]


def test_two_processes_equal_one_process(clip_dir, data_dir, tmp_path):
    """launch/local.sh 2 (2 processes x 4 CPU devices, gloo) == 1 process x 8 devices reading the same input."""
    steps = ["--config.train.max_steps=3", "--config.train.epochs=1"]
    _launch_local(2, 4, cli_args(clip_dir, data_dir, tmp_path / "two", *steps), tmp_path / "logs")
    assert cli.train_main(cli_args(clip_dir, data_dir, tmp_path / "one", *steps,
                                   "--config.data.input_processes=2")) == 0
    step2, two = _final_trainable(str(tmp_path / "two"))
    step1, one = _final_trainable(str(tmp_path / "one"))
    assert step1 == step2 == 3
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    e1 = json.loads((tmp_path / "one" / "eval" / "step_00000003.json").read_text())
    e2 = json.loads((tmp_path / "two" / "eval" / "step_00000003.json").read_text())
    assert e1["num_images"] == e2["num_images"]
    for mode in ("zsl", "gzsl"):
        assert abs(e1[mode]["mAP"] - e2[mode]["mAP"]) < 1e-4


@pytest.fixture(scope="module")
def data_dir_8(tmp_path_factory):
    """The same synthetic data in shards of 8 images: at least 4 shards per split, one per process of 4."""
    return make_synthetic_data(str(tmp_path_factory.mktemp("data8")), shard_size=8)


def test_four_processes_of_two_devices_equal_one_process_to_the_last_bits(clip_dir, data_dir_8, tmp_path):
    """launch/local.sh 4 with DEVICES_PER_PROCESS=2 (4 hosts' worth of processes, gloo) trains as 1 process
    x 8 devices reading the same input (data.input_processes=4): the same program on the same ('data': 8)
    mesh. Not bit for bit: gloo sums the 8 devices' gradient contributions in another order than XLA's
    in-process all-reduce, which moves values in their last bits (about 1 in 6 after 2 steps, by up to
    3e-7 relative); nothing else may differ."""
    steps = ["--config.train.max_steps=2", "--config.train.epochs=1", "--config.eval.max_batches=1"]
    _launch_local(4, 2, cli_args(clip_dir, data_dir_8, tmp_path / "four", *steps), tmp_path / "logs")
    assert cli.train_main(cli_args(clip_dir, data_dir_8, tmp_path / "one", *steps,
                                   "--config.data.input_processes=4")) == 0
    step4, four = _final_trainable(str(tmp_path / "four"))
    step1, one = _final_trainable(str(tmp_path / "one"))
    assert step1 == step4 == 2
    ran_on = []
    for name in ("four", "one"):
        manager = Checkpoints(str(tmp_path / name), read_only=True)
        meta = manager.read_meta(2)
        manager.close()
        ran_on.append((meta["process_count"], meta["device_count"]))
    assert ran_on == [(4, 8), (1, 8)]
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9)  # float32 rounding of a reordered sum


def test_loss_falls_over_200_steps(clip_dir, data_dir, tmp_path):
    """Learning works: 200 steps on the synthetic training split (one epoch read once, then cycled in
    memory to keep the test fast) bring the loss clearly down."""
    args = cli_args(clip_dir, data_dir, tmp_path / "learn", "--config.train.max_steps=200",
                    "--config.train.epochs=1000", "--config.train.log_every=50", "--config.data.augment=False",
                    "--config.train.checkpoint_every_epochs=1000")
    config, _ = cli.parse(args)
    epoch = list(loop.train_input(config, 0, steps_per_epoch(config)))
    result = loop.train(config, str(tmp_path / "learn"), spe=len(epoch),
                        batches=lambda start: (epoch[i % len(epoch)] for i in range(start, 200)))
    losses = np.array(result.losses)
    assert len(losses) == 200 and np.all(np.isfinite(losses))
    first, last = losses[:20].mean(), losses[-20:].mean()
    print(f"loss: first 20 steps {first:.3f}, last 20 steps {last:.3f}")
    assert last < 0.8 * first, (first, last)
