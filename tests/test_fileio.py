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
