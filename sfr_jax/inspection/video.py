"""Sequential, seek-free reading of one input at sample times, and a thread that reads ahead of the model.

Sampling: with a period P (--every P, or --fps F as P = 1/F), the k-th sample is the first frame whose
presentation time is at or after k * P; a frame serves one sample at most, so a video with fewer frames
than samples yields every frame once. With no period, every frame is a sample.

Time and picture are the ones a player (ffplay, VLC) shows:
    times       seconds from the start of the file (FFmpeg's container start time: the earliest stream, so
                a picture that starts 2 s after its audio has its first frame at 2 s), else from the video
                stream's declared start, else from its first frame
    joins       timestamps that jump back (recordings joined with `cat`, whose clocks restart) continue from
                the frame before, one frame period on, so the whole file is read and scored; each join is
                named in `Status.notes`
    picture     turned upright as the stream's display matrix (rotation metadata of phones) says, in steps
                of 90 degrees as players do, and named in `Status.notes`; mirroring flips are not applied

Outcome (`Status.state`), known once the frames are exhausted:
    ok          decoded to the end
    damaged     decoded to the end, but some packets (or images of a frame folder) were unreadable and skipped
    truncated   stopped early: a read error, or the decoded frames end well before the declared duration
                (more than max(1 s, 2 %) short: a cut file); `message` says where it stopped
    unreadable  not a video FFmpeg can open, or no frame decoded
    empty       a zero-byte file
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import queue
import threading
from typing import Callable, Iterable, Iterator

import numpy as np

from sfr_jax.data import images
from sfr_jax.inspection.sources import Source

OK, DAMAGED, TRUNCATED, UNREADABLE, EMPTY = "ok", "damaged", "truncated", "unreadable", "empty"
MAX_BAD_PACKETS_IN_A_ROW = 100  # a stream that yields nothing but errors for this long has ended for us


@dataclasses.dataclass
class Status:
    """How reading an input went; filled in while it is read."""

    state: str = OK
    message: str = ""
    frames_decoded: int = 0
    samples: int = 0
    declared_s: float | None = None  # duration from the file's header, when it has one
    last_s: float | None = None  # time of the last decoded frame
    frame_period_s: float | None = None  # from the stream's average rate, when known
    skipped: int = 0  # unreadable packets or images
    notes: list = dataclasses.field(default_factory=list)  # what was done to time or picture (docstring)
    restarts: int = 0  # timestamp jumps back (joins)

    @property
    def ok(self) -> bool:
        return self.state == OK

    @property
    def duration_s(self) -> float | None:
        """The declared duration, else (also when timestamps restarted, which confuses the header's
        figure) the end of the last decoded frame."""
        if self.declared_s and not self.restarts:
            return self.declared_s
        if self.last_s is None:
            return None
        return self.last_s + (self.frame_period_s or 0.0)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sampled frame: its number among the samples, presentation time and RGB uint8 pixels [H, W, 3]."""

    index: int
    time_s: float
    frame: np.ndarray


class _Sampler:
    """Decides which frame times are samples (module docstring)."""

    def __init__(self, every_s: float | None):
        if every_s is not None and not every_s > 0:
            raise ValueError(f"sample period must be > 0 seconds, got {every_s}")
        self.every_s, self.next_k = every_s, 0

    def take(self, time_s: float) -> bool:
        if self.every_s is None:
            return True
        if time_s < self.next_k * self.every_s - 1e-9:
            return False
        self.next_k = math.floor(time_s / self.every_s + 1e-9) + 1
        return True


class Reader:
    """Iterating yields the `Sample`s of a Source in time order; `status` says how it went."""

    def __init__(self, source: Source, every_s: float | None = None):
        self.source, self.every_s, self.status = source, every_s, Status()

    def __iter__(self) -> Iterator[Sample]:
        if self.source.is_frame_folder:
            return self._frames()
        return self._video()

    def _emit(self, time_s: float, rgb: np.ndarray) -> Sample:
        sample = Sample(self.status.samples, time_s, rgb)
        self.status.samples += 1
        return sample

    def _frames(self) -> Iterator[Sample]:
        status, sampler = self.status, _Sampler(self.every_s)
        for time_s, path in self.source.frames:
            if not sampler.take(time_s):
                continue
            try:
                rgb = np.asarray(images.open_rgb(path), dtype=np.uint8)
            except images.ImageError as error:
                status.skipped += 1
                status.message = str(error)
                continue
            status.frames_decoded += 1
            status.last_s = time_s
            yield self._emit(time_s, rgb)
        if status.frames_decoded == 0:
            status.state, status.message = UNREADABLE, f"no readable image ({status.message})"
        elif status.skipped:
            status.state = DAMAGED
            status.message = f"{status.skipped} unreadable image(s) skipped, the last: {status.message}"

    def _video(self) -> Iterator[Sample]:
        import av

        path, status = self.source.path, self.status
        try:
            if os.path.getsize(path) == 0:
                status.state, status.message = EMPTY, "zero-byte file"
                return
            container = av.open(path)
        except FileNotFoundError:
            status.state, status.message = UNREADABLE, "no such file (moved or deleted?)"
            return
        except (OSError, av.FFmpegError) as error:
            status.state = UNREADABLE
            status.message = f"cannot open it as a video ({_reason(error)}); it may be cut short or not a video"
            return
        with container:
            if not container.streams.video:
                status.state, status.message = UNREADABLE, "the file holds no video stream"
                return
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: decoding keeps pace with the model
            yield from self._decode(av, container, stream)
        self._conclude()

    def _decode(self, av, container, stream) -> Iterator[Sample]:
        status, sampler = self.status, _Sampler(self.every_s)
        status.declared_s = _declared_duration(container, stream)
        if stream.average_rate:
            status.frame_period_s = float(1 / stream.average_rate)
        start = _origin(container, stream)
        clock = _Clock(status)
        bad_in_a_row, packets = 0, container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as error:
                self._stop(f"read error ({_reason(error)})")
                return
            try:
                frames = packet.decode()
                bad_in_a_row = 0
            except av.FFmpegError as error:
                status.skipped += 1
                bad_in_a_row += 1
                status.message = _reason(error)
                if bad_in_a_row >= MAX_BAD_PACKETS_IN_A_ROW:
                    self._stop(f"{bad_in_a_row} undecodable packets in a row ({status.message})")
                    return
                continue
            for frame in frames:
                if frame.time is None:  # no timestamp: count frames at the average rate
                    time_s = status.frames_decoded * (status.frame_period_s or 0.0)
                else:
                    start = float(frame.time) if start is None else start
                    time_s = float(frame.time) - start
                time_s = clock.shown(time_s)
                status.frames_decoded += 1
                status.last_s = time_s
                if sampler.take(time_s):
                    yield self._emit(time_s, _upright(frame.to_ndarray(format="rgb24"), frame, status))

    def _stop(self, why: str) -> None:
        status = self.status
        where = f"{status.last_s:.2f} s (frame {status.frames_decoded})" if status.last_s is not None else "the start"
        of = f" of {status.declared_s:.2f} s" if status.declared_s else ""
        status.state, status.message = TRUNCATED, f"stopped at {where}{of}: {why}"

    def _conclude(self) -> None:
        status = self.status
        if status.state != OK:
            return
        if status.frames_decoded == 0:
            status.state = UNREADABLE
            status.message = "no frame decoded" + (f" ({status.message})" if status.message else "")
            return
        end = status.last_s + (status.frame_period_s or 0.0)
        cut = status.declared_s and status.declared_s - end > max(1.0, 0.02 * status.declared_s)
        if cut and not status.restarts:  # after a join the header's duration is not the file's
            self._stop("the file ends early (cut short?)")
        elif status.skipped:
            status.state = DAMAGED
            status.message = f"{status.skipped} undecodable packet(s) skipped ({status.message})"


class _Clock:
    """Frame times as a player counts them across joins (module docstring)."""

    def __init__(self, status: Status):
        self.status, self.offset, self.last = status, 0.0, None

    def shown(self, time_s: float) -> float:
        status = self.status
        time_s += self.offset
        period = status.frame_period_s or 0.04
        if self.last is not None and time_s < self.last - max(0.5 * period, 1e-3):
            jump = self.last + period - time_s
            self.offset += jump
            time_s += jump
            status.restarts += 1
            status.notes.append(f"timestamps restart at {time_s:.2f} s (recordings joined?): times go on from "
                                "the frame before")
        time_s = max(0.0, time_s)
        self.last = time_s
        return time_s


def _origin(container, stream) -> float | None:
    """Time zero as players count it: the file's start (its earliest stream), else the video stream's."""
    if container.start_time is not None:
        return container.start_time / 1_000_000  # AV_TIME_BASE
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    return None


def _upright(rgb: np.ndarray, frame, status: Status) -> np.ndarray:
    """The picture turned as its display matrix says (counter-clockwise degrees), in steps of 90."""
    degrees = getattr(frame, "rotation", 0) or 0
    turns = int(round(degrees / 90.0)) % 4
    if turns and not any(n.startswith("picture turned") for n in status.notes):
        status.notes.append(f"picture turned {turns * 90} degrees counter-clockwise, as its display matrix "
                            f"({degrees:g} degrees) says")
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def ahead(items: Iterable, depth: int = 32, transform: Callable | None = None, workers: int = 1) -> Iterator:
    """Iterate `items` (each passed through `transform`, by `workers` threads when more than one) in a daemon
    thread, at most `depth` ahead of the consumer and in order; an error of a thread is raised here.
    Stopping early (break, an error) stops the threads."""
    if depth < 1 or workers < 1:
        raise ValueError(f"depth and workers must be >= 1, got {depth}, {workers}")
    buffer, stop = queue.Queue(maxsize=depth), threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(workers, "inspect-prepare") if transform and workers > 1 else None
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        iterator = iter(items)
        try:
            for item in iterator:
                if pool is not None:
                    value = pool.submit(transform, item)
                else:
                    value = transform(item) if transform else item
                if not put((value, None)):
                    return
            put((done, None))
        except BaseException as error:  # handed to the consumer, which raises it
            put((done, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="inspect-decode", daemon=True)
    thread.start()
    try:
        while True:
            value, error = buffer.get()
            if error is not None:
                raise error
            if value is done:
                break
            yield value.result() if pool is not None else value
    finally:
        stop.set()
        thread.join()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
