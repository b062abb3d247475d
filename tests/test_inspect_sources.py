"""inspect's inputs: video files, folders, globs and frame folders named by time; unique output names;
--shard splitting the list so that every video is in exactly one shard."""
import os

import pytest

from sfr_jax.errors import InputError
from sfr_jax.inspection import sources


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x")
    return path


@pytest.mark.parametrize("name,seconds", [
    ("12.5.png", 12.5), ("000012.500.png", 12.5), ("t12.5.jpg", 12.5), ("t=12.5s.jpg", 12.5), ("T=3S.PNG", 3.0),
    ("7s.bmp", 7.0), ("0.png", 0.0), ("frame_12.png", None), ("12.5.txt", None), ("t=.5s.png", None),
    ("12,5.png", None)])
def test_frame_time_patterns(name, seconds):
    assert sources.frame_time(name) == seconds


def test_files_folders_globs_and_frame_folders(tmp_path):
    root = str(tmp_path)
    a = _touch(f"{root}/videos/a.mp4")
    b = _touch(f"{root}/videos/sub/b.MKV")
    _touch(f"{root}/videos/notes.txt")
    frames = [_touch(f"{root}/videos/seg3/{name}") for name in ("t=2s.png", "000000.500.png", "1.png")]
    c = _touch(f"{root}/other/c.avi")
    untimed = _touch(f"{root}/bad/frame_0001.png")
    found, problems = sources.expand([f"{root}/videos", f"{root}/other/*.avi", a, f"{root}/missing.mp4",
                                      f"{root}/bad", f"{root}/videos/notes.txt", f"{root}/nothing*"])
    assert [s.path for s in found] == [a, os.path.join(root, "videos", "seg3"), b, c]
    assert [s.name for s in found] == ["a", "seg3", "b", "c"]
    seg3 = found[1]
    assert seg3.is_frame_folder and not found[0].is_frame_folder
    assert seg3.frames == ((0.5, frames[1]), (1.0, frames[2]), (2.0, frames[0]))
    reasons = dict(problems)
    assert reasons[f"{root}/missing.mp4"] == "no such file or folder"
    why = reasons[os.path.dirname(untimed)]
    assert "not named by time" in why and "frame_0001.png" in why
    assert "not a video file" in reasons[f"{root}/videos/notes.txt"]
    assert reasons[f"{root}/nothing*"] == "no video file or folder matches"


def test_same_stem_gets_distinct_stable_names(tmp_path):
    first = _touch(str(tmp_path / "day1" / "seg.mp4"))
    second = _touch(str(tmp_path / "day2" / "seg.mp4"))
    found, _ = sources.expand([str(tmp_path)])
    names = [s.name for s in found]
    assert len(set(names)) == 2 and all(n.startswith("seg-") and len(n) == 12 for n in names)
    again, _ = sources.expand([second, first])  # same paths, other order: same names
    assert {s.path: s.name for s in again} == {s.path: s.name for s in found}


def test_shards_cover_the_list_exactly_once(tmp_path):
    paths = [_touch(str(tmp_path / f"v{i:02d}.mp4")) for i in range(11)]
    found, _ = sources.expand([str(tmp_path)])
    for count in (1, 2, 3, 4, 11, 16):
        shards = [sources.shard(found, i, count) for i in range(count)]
        flat = [s.path for share in shards for s in share]
        assert sorted(flat) == sorted(paths) and len(flat) == len(paths)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    assert sources.parse_shard("3/8") == (3, 8) and sources.parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("8/8", "1", "a/b", "-1/4", "1/0", ""):
        with pytest.raises(InputError, match="--shard"):
            sources.parse_shard(bad)


def test_hidden_folders_and_the_output_folder_are_not_searched(tmp_path):
    video = _touch(str(tmp_path / "v.mp4"))
    _touch(str(tmp_path / "out" / "v" / "thumbnails" / "001_RB_2.0s.jpg"))  # a previous run's results
    _touch(str(tmp_path / ".cache" / "x.mp4"))
    found, problems = sources.expand([str(tmp_path)], exclude=[str(tmp_path / "out")])
    assert [s.path for s in found] == [video] and problems == []
