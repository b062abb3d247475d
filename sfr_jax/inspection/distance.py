"""Time -> distance along the pipe: a sidecar CSV (--distance FILE|DIR), the counter read off the picture
(--distance ocr, see ocr.py and odometer.py), or a linear run over the video (--length). Each says where a
distance came from (`source_at`): sidecar, ocr, interpolated (between two counter readings) or length.

Sidecar: a CSV with the header `time_s,distance_m` (more columns are ignored), one row per reading,
times strictly increasing, both numbers finite. Distances may go down (the camera backs up). Between two
readings the distance is interpolated linearly; outside the table's time range there is no distance (None),
rather than a guess. --length START:END: distance = START + (END - START) * t / duration.

Side files that do not fit are said per video, never silently dropped: a --distance folder without the
video's CSV, a table whose times miss the video's samples (all or some), or --length on a video of unknown
duration each give a note (`plan` before any work, `fit` once the video's times are known), which goes into
the video's record, summary.csv and report and on stderr; the source named in the report is the one that
gave the distances, or "none".
"""
from __future__ import annotations

import csv
import math
import os

import numpy as np

from sfr_jax.errors import InputError, MissingInput
from sfr_jax.inspection.odometer import INTERPOLATED, OCR

HEADER = ("time_s", "distance_m")
AUTO = "auto"  # --distance modes besides a sidecar path: OCR ("ocr") and AUTO (a file named so: write ./ocr)
SIDECAR, LENGTH = "sidecar", "length"


class DistanceTable:
    """Readings (time_s, distance_m), interpolated linearly inside their time range."""

    def __init__(self, times, distances, source: str = "distance table"):
        self.times = np.asarray(times, dtype=np.float64)
        self.distances = np.asarray(distances, dtype=np.float64)
        self.source = source

    @classmethod
    def from_csv(cls, path: str) -> DistanceTable:
        """Read and validate a sidecar; every problem is an InputError naming the file and line."""
        if not os.path.isfile(path):
            raise MissingInput(f"{path}: no such distance file (a CSV with the header time_s,distance_m)")
        times, distances = [], []
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            missing = [h for h in HEADER if h not in header]
            if missing:
                raise InputError(f"{path}: line 1: the header must name the columns time_s,distance_m "
                                 f"(missing {', '.join(missing)}; found {','.join(header) or 'nothing'})")
            columns = [header.index(h) for h in HEADER]
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                values = []
                for name, column in zip(HEADER, columns):
                    cell = row[column].strip() if column < len(row) else ""
                    try:
                        value = float(cell)
                    except ValueError:
                        raise InputError(f"{path}: line {line}: {name} {cell!r} is not a number") from None
                    if not math.isfinite(value):
                        raise InputError(f"{path}: line {line}: {name} {cell!r} is not a finite number")
                    values.append(value)
                if times and values[0] <= times[-1]:
                    raise InputError(f"{path}: line {line}: time_s {values[0]:g} does not increase (the row "
                                     f"before has {times[-1]:g}); sort the rows by time, one reading per time")
                times.append(values[0])
                distances.append(values[1])
        if not times:
            raise InputError(f"{path}: no readings below the header time_s,distance_m")
        return cls(times, distances, path)

    def at(self, time_s: float) -> float | None:
        """The distance at time_s, or None outside the readings' time range."""
        if time_s is None or not self.times[0] <= time_s <= self.times[-1]:
            return None
        return float(np.interp(time_s, self.times, self.distances))

    def source_at(self, time_s: float) -> str:
        """Where the distance at time_s comes from ("" where there is none)."""
        return SIDECAR if self.at(time_s) is not None else ""


class CounterDistance(DistanceTable):
    """Distances read off the picture's counter (odometer.clean): the samples' times with their accepted or
    interpolated distances; between samples, linear."""

    def __init__(self, times, cleaned, source: str):
        times = np.asarray(times, dtype=np.float64)
        have = np.isfinite(cleaned.distances)
        super().__init__(times[have], cleaned.distances[have], source)
        self.read_at = {float(t) for t, kind in zip(times, cleaned.kinds) if kind == OCR}

    def source_at(self, time_s: float) -> str:
        if self.at(time_s) is None:
            return ""
        return OCR if time_s in self.read_at else INTERPOLATED


def plan(videos: list, sidecar: str | None) -> dict:
    """{video name: (DistanceTable or None, note)} for --distance SIDECAR (a file for one video, or a folder
    of <video name>.csv) or auto (a sidecar beside the video, videos/a.mp4 -> videos/a.csv, where there is
    one: the others are read off the picture), every CSV read and validated now, before any model is loaded."""
    if sidecar is None or sidecar == OCR:
        return {}
    if sidecar == AUTO:
        beside = {video.name: os.path.splitext(video.path)[0] + ".csv" for video in videos}
        return {name: (DistanceTable.from_csv(path), "") for name, path in beside.items() if os.path.isfile(path)}
    if os.path.isdir(sidecar):
        found = {}
        for video in videos:
            names = dict.fromkeys((video.stem, video.name))  # the video's own name, else its output name
            paths = [os.path.join(sidecar, name + ".csv") for name in names]
            path = next((p for p in paths if os.path.isfile(p)), None)
            found[video.name] = (DistanceTable.from_csv(path), "") if path else \
                (None, f"no distances: the --distance folder {sidecar} has no {' or '.join(n + '.csv' for n in names)}")
        return found
    if len(videos) > 1:
        raise InputError(f"--distance {sidecar}: one sidecar file fits one video, and {len(videos)} are "
                         "given; for many videos give a folder holding <video name>.csv for each")
    table = DistanceTable.from_csv(sidecar)
    return {video.name: (table, "") for video in videos}


def fit(distance, times, duration_s) -> tuple:
    """(the distance source to use, or None; a note when it does not fit) for sample `times` of a video of
    `duration_s` (None: unknown)."""
    times = np.asarray(times, dtype=np.float64)
    if isinstance(distance, LinearLength):
        if not distance.duration_s:
            return None, "no distances: --length needs the video's duration, which is unknown"
        return distance, ""
    if distance is None or not len(times):
        return distance, ""
    inside = int(((times >= distance.times[0]) & (times <= distance.times[-1])).sum())
    if inside == len(times):
        return distance, ""
    span = f"{distance.source} covers {distance.times[0]:g}-{distance.times[-1]:g} s, the video's samples " \
           f"{times[0]:g}-{times[-1]:g} s" + (f" (of {duration_s:g} s)" if duration_s else "")
    if inside == 0:
        return None, f"no distances: {span}"
    return distance, f"distances for {inside} of {len(times)} samples only: {span}"


class LinearLength:
    """--length START:END: the camera moves from START to END metres at a constant speed over the video."""

    def __init__(self, start_m: float, end_m: float, duration_s: float | None):
        self.start_m, self.end_m, self.duration_s = start_m, end_m, duration_s
        self.source = f"--length {start_m:g}:{end_m:g} over {duration_s:g} s" if duration_s else "--length"

    def at(self, time_s: float) -> float | None:
        if time_s is None or not self.duration_s:
            return None
        return self.start_m + (self.end_m - self.start_m) * time_s / self.duration_s

    def source_at(self, time_s: float) -> str:
        return LENGTH if self.at(time_s) is not None else ""


def parse_length(text: str, flag: str = "--length") -> tuple[float, float]:
    """'START:END' in metres -> (start, end); `flag` names the option in the error."""
    parts = (text or "").split(":")
    try:
        start, end = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        start = end = None
    if start is None or not (math.isfinite(start) and math.isfinite(end)):
        raise InputError(f"{flag} {text!r}: expected START:END in metres, e.g. {flag} 0:48.5")
    return start, end
