"""What `inspect` reads: VIDEOS arguments expanded to videos and frame folders, and the --shard split.

An argument is a video file, a glob, or a folder. A folder is walked recursively: every video in it is one
input, and every folder whose images are all named by time is one input too, a "frame folder", read in
time order. A file is a video when its extension is a common video one (VIDEO_EXTENSIONS, which saves a
probe) or, failing that, when FFmpeg opens it and finds a video stream that is not a cover picture (so
.mxf, .ogv or a video without an extension count; a CSV, a text or an audio file does not). Hidden files and
folders (.name) and the output folder are not looked at. Every other file a walk or a glob meets is left
out, and counted and named (`expand`'s `left_out`), never dropped without a word; a file named on its own
that is not a video is a problem. Accepted frame names (the stem, before the image extension; case does not
matter):
    12.5   000012.500   t12.5   t=12.5   12.5s   t=000012.500s     seconds from the start of the video
A folder whose images are not all named so is reported, not guessed at.

Each input gets an output name, unique within the list: the video's file stem (the folder's name for a
frame folder) made a safe file name (`fileio.safe_name`: no `/`, `\`, NUL, leading dot or over-long name);
where two names collide after that (or differ only in case, which some file systems do not tell apart),
each gets `-` and 8 hex digits of its absolute path's SHA-1, so every host of a sharded run derives the
same names.
"""
from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import re

from sfr_jax import fileio
from sfr_jax.data.images import IMAGE_EXTENSIONS
from sfr_jax.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".mk3d", ".webm", ".mpg", ".mpeg", ".m2v", ".m1v",
                    ".vob", ".ts", ".m2t", ".mts", ".m2ts", ".trp", ".tp", ".mod", ".tod", ".wmv", ".asf", ".flv",
                    ".f4v", ".3gp", ".3g2", ".mj2", ".ogv", ".mxf", ".gxf", ".dv", ".dif", ".nut", ".y4m",
                    ".divx", ".xvid", ".rm", ".rmvb", ".ivf", ".264", ".h264", ".265", ".h265", ".hevc",
                    ".mjpeg", ".mjpg", ".dav", ".evo", ".vro")
FRAME_NAME = re.compile(r"^(?:t=?)?(\d+(?:\.\d+)?)s?$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Source:
    """One input: a video file (`frames` empty) or a frame folder (`frames`: ((time_s, file), ...) by time)."""

    path: str
    name: str
    frames: tuple = ()

    @property
    def is_frame_folder(self) -> bool:
        return bool(self.frames)

    @property
    def shown(self) -> str:
        """The path as text for reports and CSV (bytes that are not UTF-8 shown as \\xNN)."""
        return fileio.display_path(self.path)

    @property
    def stem(self) -> str:
        """The name the user gave it: the file's stem, or the frame folder's name (not made safe)."""
        return _stem(self.path)


def frame_time(file_name: str):
    """Seconds encoded in an image file name (see the module docstring), or None when it holds none."""
    stem, extension = os.path.splitext(os.path.basename(file_name))
    if extension.lower() not in IMAGE_EXTENSIONS:
        return None
    match = FRAME_NAME.match(stem)
    return float(match.group(1)) if match else None


def _is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def ffmpeg_video(path: str) -> bool:
    """Whether FFmpeg opens `path` and finds a video stream in it that is not a cover picture (an MP3's)."""
    import av

    try:
        with av.open(path) as container:
            return any(not (stream.disposition & av.stream.Disposition.attached_pic)
                       for stream in container.streams.video)
    except (OSError, av.FFmpegError, ValueError, UnicodeError):
        return False


def _video_file(path: str) -> bool:
    return _is_video(path) or (not path.lower().endswith(IMAGE_EXTENSIONS) and ffmpeg_video(path))


def _walk(folder: str, found: list, problems: list, exclude: tuple = (), left: list | None = None) -> None:
    """Videos and frame folders under `folder`, in sorted order, appended to `found` as (path, frames);
    hidden files and folders and the folders in `exclude` (absolute paths) are not entered; every other
    file is appended to `left`."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and
                         os.path.abspath(os.path.join(root, d)) not in exclude)
        files = sorted(f for f in files if not f.startswith("."))
        videos = [f for f in files if _video_file(os.path.join(root, f))]
        found.extend((os.path.join(root, f), ()) for f in videos)
        images = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        if left is not None:
            left.extend(os.path.join(root, f) for f in files if f not in videos and f not in images)
        if not images:
            continue
        timed = [(frame_time(f), f) for f in images]
        untimed = [f for t, f in timed if t is None]
        if untimed:
            why = (f"{len(untimed)} image(s) not named by time, e.g. {untimed[0]!r}; name frames by their "
                   "second, like 000012.500.png or t=12.5s.jpg")
            problems.append((root, why))
            continue
        times = [t for t, _ in timed]
        if len(set(times)) < len(times):
            problems.append((root, "two images name the same time"))
            continue
        found.append((root, tuple(sorted((t, os.path.join(root, f)) for t, f in timed))))


def _stem(path: str) -> str:
    base = os.path.basename(os.path.normpath(path))
    return base if os.path.isdir(path) else os.path.splitext(base)[0]


def _unique_names(paths: list) -> list:
    names = [fileio.safe_name(_stem(p)) for p in paths]
    counts = {}
    for name in names:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    return [name if counts[name.lower()] == 1 else
            f"{name}-{hashlib.sha1(p.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
            for name, p in zip(names, paths)]


def expand(patterns, exclude=(), left_out: list | None = None) -> tuple[list, list]:
    """([Source] in a stable order, [(argument, problem)]) from video files, folders and globs; folders in
    `exclude` (say, the output folder, when it lies among the videos) are not searched. The files a walk or
    glob leaves out go to `left_out` as (argument, [paths]) when it is given, else into the problems."""
    found, problems, left = [], [], []
    exclude = tuple(os.path.abspath(e) for e in exclude)
    for pattern in patterns:
        others = []
        if os.path.isdir(pattern):
            before, inside = len(found), []
            _walk(pattern, found, inside, exclude, others)
            if len(found) == before and not inside:
                inside.append((pattern, "folder holds no video file and no frame folder"))
            problems.extend(inside)
        elif os.path.isfile(pattern):
            if not _video_file(pattern):
                problems.append((pattern, "not a video file: FFmpeg finds no video stream in it"))
            else:
                found.append((pattern, ()))
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            videos = [m for m in matches if os.path.isfile(m) and _video_file(m)]
            folders = [m for m in matches if os.path.isdir(m)]
            others += [m for m in matches if os.path.isfile(m) and m not in videos]
            for folder in folders:
                _walk(folder, found, problems, exclude, others)
            found.extend((m, ()) for m in videos)
            if not videos and not folders:
                problems.append((pattern, "no video file or folder matches"))
        else:
            problems.append((pattern, "no such file or folder"))
        if others:
            left.append((pattern, others))
    if left_out is not None:
        left_out.extend(left)
    else:
        problems.extend((pattern, describe_left_out(others)) for pattern, others in left)
    unique, seen = [], set()
    for path, frames in found:
        path = os.path.abspath(path)
        if path not in seen:
            seen.add(path)
            unique.append((path, tuple((t, os.path.abspath(f)) for t, f in frames)))
    names = _unique_names([path for path, _ in unique])
    return [Source(path, name, frames) for (path, frames), name in zip(unique, names)], problems


def describe_left_out(paths: list, shown: int = 5) -> str:
    """'N other file(s) left out ...: a, b, ...' naming the first `shown` of `paths`."""
    names = ", ".join(fileio.display_path(os.path.basename(p)) for p in paths[:shown])
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return f"{len(paths)} other file(s) left out, neither videos FFmpeg opens nor frames: {names}{more}"


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N (I is 0-based, as SLURM_ARRAY_TASK_ID usually is)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not int(match.group(2)) > int(match.group(1)) >= 0:
        raise InputError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4 for the first of 4")
    return int(match.group(1)), int(match.group(2))


def shard(sources: list, index: int, count: int) -> list:
    """The sources of shard `index` of `count`: every count-th, starting at `index` (the list's order)."""
    return [s for k, s in enumerate(sources) if k % count == index]
