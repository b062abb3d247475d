"""A real Ctrl-C / SIGTERM sent to a real `sfr-jax` child process while it works: exit 130 / 143, one line,
nothing written that looks complete. Before, Ctrl-C during an ONNX export was swallowed by torch.onnx (or
became its 'internal error'), and an interrupted calibrate could die in the interpreter's teardown (139)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from sfr_jax.eval import calibration_record
from sfr_jax.train import loop
from train_fixtures import make_synthetic_data, make_tiny_clip_dir, random_batch, tiny_config

SPE = 2


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("signals")
    config = tiny_config(make_tiny_clip_dir(root / "clip"), make_synthetic_data(str(root / "data")),
                         **{"train.epochs": 1, "train.best_metric": ""})
    loop.train(config, str(root / "wd"), spe=SPE, batches=lambda s: (random_batch(16, seed=i) for i in range(s, SPE)))
    return root / "wd"


def _start(argv):
    """`python -m sfr_jax.main ARGV` in its own process group, with SIGINT's default disposition (as an
    interactive shell starts commands; pytest-xdist's workers ignore SIGINT, and children inherit that)."""
    return subprocess.Popen([sys.executable, "-m", "sfr_jax.main", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(proc, ready, timeout=240):
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before the signal: {proc.returncode} {proc.stderr.read()[-2000:]}"


def _maps_hold(pid, library):
    try:
        with open(f"/proc/{pid}/maps") as handle:
            return library in handle.read()
    except OSError:
        return False


def _ended(proc, sig, code, verb):
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == f"sfr-jax {verb}: interrupted; run the same command to resume", err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130)])  # (one signal each: a child costs ~15 s)
def test_onnx_export_interrupted_while_torch_works(workdir, tmp_path, sig, code):
    target = tmp_path / "out" / "m.onnx"
    proc = _start(["export", "--workdir", str(workdir), "--format", "onnx", "--to", str(target)])
    _wait_for(proc, lambda: _maps_hold(proc.pid, "libtorch_cpu"))  # torch is loaded for the export only
    time.sleep(1.0)  # inside torch's tracing/export
    _ended(proc, sig, code, "export")
    leftovers = os.listdir(target.parent) if target.parent.exists() else []
    assert not [n for n in leftovers if n.endswith((".onnx", ".json"))], leftovers


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143)])
def test_calibrate_interrupted_while_scoring_keeps_no_record(workdir, sig, code):
    path = calibration_record.record_path(str(workdir), SPE)
    proc = _start(["calibrate", "--workdir", str(workdir), "--split", "test"])
    lines = []

    def restored():  # the log says so once the step is open and scoring starts (infer.restore)
        lines.append(proc.stderr.readline())
        return "opened " in lines[-1] and " step " in lines[-1]

    _wait_for(proc, restored)
    _ended(proc, sig, code, "calibrate")
    assert not os.path.exists(path)
