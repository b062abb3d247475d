"""atomic_directory: a folder appears complete or not at all."""
import os

import pytest

from sfr_jax.fileio import atomic_directory


def test_success_replaces_the_folder_in_one_step(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_directory(str(out)) as tmp:
        (open(os.path.join(tmp, "new.txt"), "w")).write("new")
        assert not (out / "new.txt").exists()  # nothing visible before the end
    assert sorted(os.listdir(out)) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary left behind


def test_failure_keeps_the_old_folder_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_directory(str(out)) as tmp:
            (open(os.path.join(tmp, "half.txt"), "w")).write("half")
            raise RuntimeError("disk full")
    assert sorted(os.listdir(out)) == ["old.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_failure_of_a_new_folder_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(str(tmp_path / "a" / "new")):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path / "a") == []


WRITER = r"""
import sys, time
sys.path.insert(0, {repo!r})
from sfr_jax.fileio import {helper}
{body}
"""


def _start_writer(tmp_path, helper, body):
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=repo, helper=helper, body=body))
    return subprocess.Popen([sys.executable, str(script)])


def _wait_for(predicate, timeout=30.0):
    import time

    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_killed_file_writer_leaves_no_complete_looking_file(tmp_path):
    from sfr_jax.fileio import atomic_write

    target = tmp_path / "out" / "big.bin"  # the folder does not exist yet: it is created
    body = (f"with atomic_write({str(target)!r}, 'wb') as f:\n"
            "    while True:\n        f.write(b'x' * 65536); f.flush(); time.sleep(0.01)\n")
    proc = _start_writer(tmp_path, "atomic_write", body)
    try:
        assert _wait_for(lambda: (tmp_path / "out").is_dir() and any(
            os.path.getsize(tmp_path / "out" / n) > 0 for n in os.listdir(tmp_path / "out")))
    finally:
        proc.kill()
        proc.wait()
    names = os.listdir(tmp_path / "out")
    assert "big.bin" not in names and len(names) == 1 and names[0].startswith(".big.bin.tmp-")
    with atomic_write(str(target)) as f:  # the next write of the same target removes the dead writer's temp
        f.write("complete")
    assert os.listdir(tmp_path / "out") == ["big.bin"] and target.read_text() == "complete"


def test_a_killed_folder_writer_keeps_the_old_folder(tmp_path):
    out = tmp_path / "store"
    out.mkdir()
    (out / "old.txt").write_text("old")
    body = (f"import os\nwith atomic_directory({str(out)!r}) as tmp:\n"
            "    open(os.path.join(tmp, 'half.txt'), 'w').write('half')\n    time.sleep(600)\n")
    proc = _start_writer(tmp_path, "atomic_directory", body)
    try:
        assert _wait_for(lambda: any(n.startswith(".store.tmp-") for n in os.listdir(tmp_path)))
    finally:
        proc.kill()
        proc.wait()
    assert sorted(os.listdir(out)) == ["old.txt"]
    with atomic_directory(str(out)) as tmp:
        (open(os.path.join(tmp, "new.txt"), "w")).write("new")
    assert sorted(os.listdir(out)) == ["new.txt"]
    assert sorted(n for n in os.listdir(tmp_path) if not n.endswith(".py")) == ["store"]  # stale temp removed


WATCHER = r"""
import os, sys
out, stop, missing, seen = sys.argv[1], sys.argv[2], 0, 0
while not os.path.exists(stop):
    seen += 1
    missing += not os.path.isdir(out)
print(missing, seen)
"""


def test_replacing_a_folder_never_leaves_the_name_empty(tmp_path):
    import subprocess
    import sys

    out, stop = tmp_path / "out", tmp_path / "stop"
    with atomic_directory(str(out)) as tmp:
        open(os.path.join(tmp, "v"), "w").write("0")
    # another process (no shared GIL) looks for the name as fast as it can while the folder is replaced
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, str(out), str(stop)], stdout=subprocess.PIPE, text=True)
    for i in range(300):
        with atomic_directory(str(out)) as tmp:
            open(os.path.join(tmp, "v"), "w").write(str(i))
    stop.write_text("")
    missing, seen = map(int, watcher.communicate(timeout=60)[0].split())
    assert seen > 1000 and missing == 0 and (out / "v").read_text() == "299"


def test_outputs_that_cannot_be_written_are_user_errors(tmp_path):
    from sfr_jax.errors import OutputError
    from sfr_jax.fileio import write_text

    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputError, match="folder: it is a folder"):
        write_text(str(tmp_path / "folder"), "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create the folder"):
        write_text(str(tmp_path / "file" / "below.txt"), "x")
    with pytest.raises(OutputError, match="cannot create the folder /proc/sfr-jax-test"):
        write_text("/proc/sfr-jax-test/out.txt", "x")
