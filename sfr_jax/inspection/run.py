"""`inspect_videos`: videos -> sampled frames -> quality gate -> scores -> events -> files, for many videos.

Per input, under OUT/<name>/:
    frames.csv    one row per sample: time, distance and its source, the counter's reading (with --distance
                  ocr/auto), quality measures and flags, probability per class
    events.csv    one row per event (events.py), events.json the same with the settings
    thumbnails/   the key frame of each event, JPEG, and the same with the class's heatmap (*_map.jpg)
    report.html   the self-contained page (report.py)
    record.json   written last: status, counts, the outputs above with their sizes, and what the results
                  depend on (the input's size and modification time, a digest of model, classes,
                  thresholds and settings)
The folder is built under a temporary name and put in place whole (fileio.atomic_directory), so a folder
under its own name is always complete. A later run skips an input whose record matches and whose named
outputs are all there at their recorded sizes; a changed input or setting, a missing or altered output
(say, a deleted frames.csv), a folder without a record, or an interrupted run is done again.
OUT/summary.csv has one row per input of the whole list (all shards): done ones from their records, the
others "pending"; each run rewrites it from the records present, so the last shard to finish (or any
rerun) leaves it complete. Its `distance` column names where distances came from (or "none" and why), its
`notes` column what was done to time or picture (video.py) and sidecars that did not fit (distance.py).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import json
import math
import os
import sys
import time
import urllib.parse

import numpy as np
from PIL import Image
from tqdm import tqdm

from sfr_jax import fileio
from sfr_jax.data import images
from sfr_jax.eval import heatmaps
from sfr_jax.inspection import events as ev
from sfr_jax.inspection import distance as dist
from sfr_jax.inspection import odometer, quality, report, thumbs, video
from sfr_jax.inspection.sources import Source, shard
from sfr_jax.serve.scorer import pad_batches

RECORD, SUMMARY, FRAMES, EVENTS_CSV, EVENTS_JSON, REPORT = (
    "record.json", "summary.csv", "frames.csv", "events.csv", "events.json", "report.html")
RECORD_FORMAT = 2  # 2: the record names its outputs (1 did not, so its outputs cannot be checked)
PENDING = "pending"
SUMMARY_EVERY_S = 30.0  # rewriting summary.csv reads every record, so not after each of many short videos
PREPARE_WORKERS = min(4, os.cpu_count() or 1)  # PIL's resize and JPEG work run outside the GIL
BROWSER_PLAYABLE = (".mp4", ".m4v", ".webm", ".ogv", ".mov", ".mkv")


@dataclasses.dataclass(frozen=True)
class InspectOptions:
    """Settings of a run; every one that changes results is part of the resume digest."""

    every_s: float | None = 1.0  # sample period; None: every frame
    batch: int | None = None  # None: the scorer's batch_size
    quality: quality.QualityConfig = quality.QualityConfig()
    events: ev.EventConfig = ev.EventConfig()
    distance: str | None = None  # a time_s,distance_m CSV (one input), a folder of <name>.csv, "ocr" or "auto"
    length: tuple | None = None  # (start_m, end_m), linear in time over each video; with ocr/auto the fallback
    odometer: odometer.OdometerConfig = odometer.OdometerConfig()  # plausibility of counter readings
    shard: tuple = (0, 1)  # (index, count)
    progress: bool = True
    model: str = ""  # names the model (and class file) in the resume digest
    prefetch: int = 64  # samples decoded ahead of the model
    prepare_workers: int = PREPARE_WORKERS  # threads resizing, gating and thumbnailing decoded frames
    heatmaps: bool = True  # key frames' heatmaps, peaks and clock positions, when the scorer gives maps
    axis: tuple = (0.5, 0.5)  # the pipe axis in the picture (fractions), for clock positions


@dataclasses.dataclass
class Summary:
    """What a run did: one row per input of the list, and the inputs of this shard that did not end ok."""

    rows: list
    failed: list  # [(Source, status, message)]
    done: list  # names inspected in this run
    skipped: list  # names already finished by an earlier run
    notes: list = dataclasses.field(default_factory=list)  # [(Source, note)]: time, picture, side files


def inspect_videos(scorer, inputs: list, out_dir: str, options: InspectOptions = InspectOptions(),
                   distances: dict | None = None) -> Summary:
    """Inspect this shard's share of `inputs` (sources.Source) with `scorer` (the Scorer protocol);
    `distances` is distance.plan's answer when the caller read the sidecars already (before the model)."""
    share = shard(inputs, *options.shard)
    if distances is None:
        distances = dist.plan(share, options.distance)
    digest = _digest(scorer, options)
    done, skipped, failed, notes = [], [], [], []
    last_summary = time.monotonic()
    try:
        for source in share:
            record = finished_record(out_dir, source, digest)
            if record is None:
                record = _inspect_one(scorer, source, out_dir, options, digest, distances.get(source.name,
                                                                                              (None, "")))
                done.append(source.name)
            else:
                skipped.append(source.name)
            if record["status"] != video.OK:
                failed.append((source, record["status"], record["message"]))
            said = record.get("notes")
            notes.extend((source, n) for n in (said if isinstance(said, list) else []) if isinstance(n, str))
            if time.monotonic() - last_summary > SUMMARY_EVERY_S:  # a long run shows its progress
                write_summary(out_dir, inputs, scorer.codes, digest)
                last_summary = time.monotonic()
    finally:  # also after Ctrl-C: the summary shows what is done
        rows = write_summary(out_dir, inputs, scorer.codes, digest)
    return Summary(rows, failed, done, skipped, notes)


def fingerprint(source: Source) -> list:
    """What says the input is the same as last time: size and modification time of its file(s)."""
    paths = [f for _, f in source.frames] if source.is_frame_folder else [source.path]
    stats = []
    for path in paths:
        try:
            stat = os.stat(path)
            stats.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            stats.append((None, None))
    if source.is_frame_folder:
        return [len(stats), sum(s or 0 for s, _ in stats), max((m or 0 for _, m in stats), default=0)]
    return list(stats[0])


def _digest(scorer, options: InspectOptions) -> str:
    decisions = scorer.decisions
    payload = {
        "model": options.model, "codes": list(scorer.codes), "image_size": int(scorer.image_size),
        "decisions": [decisions.source, np.asarray(decisions.scale).tolist(),
                      np.asarray(decisions.shift).tolist(), np.asarray(decisions.threshold).tolist(),
                      None if decisions.confident is None else np.asarray(decisions.confident).tolist()],
        "every_s": options.every_s, "quality": dataclasses.asdict(options.quality),
        "events": dataclasses.asdict(options.events), "length": options.length,
        "distance": _path_stamp(options.distance) if options.distance not in (None, dist.OCR, dist.AUTO) else options.distance,
        "odometer": dataclasses.asdict(options.odometer) if options.distance in (dist.OCR, dist.AUTO) else None,
        "heatmaps": _wants_maps(scorer, options), "axis": list(options.axis),
        "standards": getattr(scorer, "standards", None) or {},  # a class file's codes edited: redo
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _path_stamp(path: str) -> list:
    """A folder's or file's sidecar state: [(name, size, mtime)]."""
    files = sorted(os.listdir(path)) if os.path.isdir(path) else [""]
    out = []
    for name in files:
        full = os.path.join(path, name) if name else path
        with_stat = os.stat(full) if os.path.exists(full) else None
        out.append((name, with_stat.st_size if with_stat else None, with_stat.st_mtime_ns if with_stat else None))
    return out


def finished_record(out_dir: str, source: Source, digest: str):
    """The record of a finished, still valid result of `source` under out_dir, else None."""
    path = fileio.path_under(out_dir, source.name, RECORD)
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or \
            record.get("digest") != digest or record.get("fingerprint") != fingerprint(source):
        return None
    return record if _outputs_intact(os.path.dirname(path), record.get("outputs")) else None


def _outputs(folder: str) -> dict:
    """{relative path: size} of every file under a finished video's folder (the record itself excepted)."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            full = os.path.join(root, name)
            relative = os.path.relpath(full, folder).replace(os.sep, "/")
            if relative != RECORD:
                found[relative] = os.path.getsize(full)
    return found


def _outputs_intact(folder: str, outputs) -> bool:
    """Whether every output a record names is there at its recorded size (a record read back is not trusted
    to be well formed: any oddity means "redo")."""
    if not isinstance(outputs, dict) or not outputs:
        return False
    try:
        return all(isinstance(size, int) and os.path.getsize(fileio.path_under(folder, name)) == size
                   for name, size in outputs.items())
    except (OSError, TypeError, ValueError):
        return False


def _wants_maps(scorer, options: InspectOptions) -> bool:
    return bool(options.heatmaps and getattr(scorer, "has_maps", False))


def _score(scorer, pending: list, batch: int, maps: list | None = None) -> np.ndarray:
    """Logits [n, c] of n images, in batches padded with black images to the batch size (one compiled shape);
    with a `maps` list, their heatmaps [n, c, g, g] (float16: a long video keeps them all) are appended to it."""
    out = []
    for x, n in pad_batches(np.stack(pending), batch):
        if maps is None:
            logits = np.asarray(scorer.logits(x), dtype=np.float32)
        else:
            logits, got = scorer.logits_and_maps(x)
            maps.append(np.asarray(got[:n], np.float16))
            logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (len(x), len(scorer.codes)):
            raise RuntimeError(f"the scorer returned logits of shape {logits.shape} for {len(x)} images and "
                               f"{len(scorer.codes)} classes")
        out.append(logits[:n])
    return np.concatenate(out)


def _progress(source: Source, options: InspectOptions):
    total = len(source.frames) if source.is_frame_folder else None
    return tqdm(total=total, desc=source.name, unit="frame", disable=not options.progress, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5, leave=True)


def _expected_samples(status: video.Status, every_s) -> int | None:
    if not status.declared_s:
        return None
    period = every_s or status.frame_period_s
    return int(math.ceil(status.declared_s / period)) if period else None


class _Collected:
    """Per-sample results of one input, in sample order."""

    def __init__(self):
        self.times, self.qualities, self.logits, self.readings, self.maps = [], [], [], [], []


def _decode_and_score(scorer, source, options, spool, batch, counter=None) -> tuple:
    """(Reader with its final status, _Collected): decode ahead, gate, thumbnail, read the counter (an
    ocr.CounterReader, or None), score in batches."""
    reader = video.Reader(source, options.every_s)
    size = int(scorer.image_size)

    def prepare(sample: video.Sample):
        reading = counter.read(sample.frame) if counter is not None else None
        return (sample.index, sample.time_s, images.from_array(sample.frame, size),
                quality.assess(sample.frame, options.quality), thumbs.thumbnail_jpeg(sample.frame), reading)

    got, pending = _Collected(), []
    maps = got.maps if _wants_maps(scorer, options) else None
    with _progress(source, options) as bar:
        for index, time_s, pixels, measured, jpeg, reading in video.ahead(reader, options.prefetch, prepare,
                                                                               options.prepare_workers):
            if bar.total is None and reader.status.declared_s:
                bar.total = _expected_samples(reader.status, options.every_s)
                bar.refresh()
            spool.add(index, jpeg)
            got.times.append(time_s)
            got.qualities.append(measured)
            got.readings.append(np.nan if reading is None else reading)
            pending.append(pixels)
            if len(pending) == batch:
                got.logits.append(_score(scorer, pending, batch, maps))
                pending = []
            bar.update()
        if pending:
            got.logits.append(_score(scorer, pending, batch, maps))
    return reader, got


def _inspect_one(scorer, source: Source, out_dir: str, options: InspectOptions, digest: str, planned) -> dict:
    """Inspect one input into OUT/<name>/ (atomically); returns its record."""
    final = fileio.path_under(out_dir, source.name)
    stamp = fingerprint(source)  # before reading: a file that changes meanwhile is read again next time
    codes = tuple(scorer.codes)
    batch = int(options.batch or scorer.batch_size)
    with fileio.atomic_directory(final) as tmp:
        with thumbs.Spool(os.path.join(tmp, ".spool")) as spool:
            table, note = planned
            counter = None
            if options.distance in (dist.OCR, dist.AUTO) and table is None:
                from sfr_jax.inspection import ocr  # RapidOCR and its OpenCV load only when asked for

                counter = ocr.CounterReader()
            reader, got = _decode_and_score(scorer, source, options, spool, batch, counter)
            status = reader.status
            times = np.asarray(got.times, dtype=np.float64)
            logits = np.concatenate(got.logits) if got.logits else np.zeros((0, len(codes)), np.float32)
            probabilities = scorer.decisions.probabilities(logits) if len(logits) else np.zeros((0, len(codes)))
            flagged = np.asarray([q.flagged for q in got.qualities], dtype=bool)
            distance, note = _distance(options, table, note, status, times, got.readings, counter)
            distance, fit_note = dist.fit(distance, times, status.duration_s)
            note = note or fit_note
            found = ev.find_events(times, probabilities, np.asarray(scorer.decisions.threshold), codes,
                                   ~flagged, options.events, distance, scorer.decisions.confident)
            maps = np.concatenate(got.maps) if got.maps else None
            key_frames, key_maps = {}, {}
            standards = getattr(scorer, "standards", None) or {}
            for number, event in enumerate(found):
                event.standard_codes = dict(standards.get(event.code) or {})
                event.thumbnail = fileio.safe_name(f"{number + 1:03d}_{event.code}_{event.peak_s:.1f}s.jpg")
                key_frames[number] = spool.get(event.peak_sample)
                with fileio.atomic_write(fileio.path_under(tmp, "thumbnails", event.thumbnail), "wb") as handle:
                    handle.write(key_frames[number])
                if maps is not None:
                    key_maps[number] = _locate(event, maps[event.peak_sample, codes.index(event.code)],
                                               key_frames[number], options.axis)
                    with fileio.atomic_write(os.path.join(tmp, "thumbnails", event.heatmap), "wb") as handle:
                        handle.write(key_maps[number])
        flag_counts = {name: int(sum(getattr(q, name) for q in got.qualities)) for name in quality.FLAGS}
        settings = _settings(scorer, options, distance, note)
        if status.notes:
            settings["time and picture"] = "; ".join(status.notes)
        _write_frames(os.path.join(tmp, FRAMES), codes, times, got.qualities, probabilities, distance,
                      scorer.decisions, got.readings if counter is not None else None)
        _write_events(tmp, source, status, codes, scorer.decisions, found, settings)
        data = report.ReportData(
            source.name, source.shown, status.state, status.message, status.duration_s or 0.0, codes,
            np.asarray(scorer.decisions.threshold), times, probabilities,
            ev.smoothed_probabilities(probabilities, ~flagged, options.events), flagged, flag_counts, found,
            key_frames, settings, _video_src(source, final), confident=_confident(scorer.decisions),
            heatmaps=key_maps)
        fileio.write_text(os.path.join(tmp, REPORT), report.render(data))
        counts = {code: sum(e.code == code for e in found) for code in codes}
        record = {
            "format": RECORD_FORMAT, "name": source.name, "source": source.shown, "status": status.state,
            "message": status.message, "duration_s": status.duration_s, "decoded_s": status.last_s,
            "frames": len(times), "flagged": int(flagged.sum()), "flag_counts": flag_counts,
            "events": counts, "distance": settings["distance"], "notes": status.notes + ([note] if note else []),
            "digest": digest, "fingerprint": stamp, "outputs": _outputs(tmp),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        fileio.write_json(os.path.join(tmp, RECORD), record)  # last: its presence means "finished"
    return record


def _distance(options: InspectOptions, table, note: str, status, times, readings, counter) -> tuple:
    """(the video's distances, a note): its sidecar, else the counter read off the picture (when asked for and
    at least one reading is accepted), else --length, else None; a fallback says why in the note or source."""
    if table is not None:
        return table, note
    why = ""
    if counter is not None:
        cleaned = odometer.clean(times, readings, options.odometer)
        rejected = ", ".join(f"{n} {reason}" for reason, n in cleaned.rejected.items() if n)
        counts = (f"{cleaned.accepted} of {len(times)} samples read, "
                  f"{sum(k == odometer.INTERPOLATED for k in cleaned.kinds)} interpolated, "
                  f"{sum(k == odometer.NONE for k in cleaned.kinds)} without; "
                  f"{cleaned.read} numbers seen, rejected: {rejected or 'none'}")
        if cleaned.accepted:
            from sfr_jax.inspection import ocr

            return dist.CounterDistance(times, cleaned, f"ocr ({ocr.ENGINE}): {counter.describe()}; {counts}"), note
        why = f"ocr: {counter.describe()}, {counts}; "
    if options.length:
        length = dist.LinearLength(*options.length, status.duration_s)
        length.source = why + length.source
        return length, note
    if why:
        return None, why + "no --length to fall back on"
    return None, note


def _locate(event: ev.Event, heat: np.ndarray, key_frame_jpeg: bytes, axis) -> bytes:
    """Set the event's peak and clock position from its key frame's heatmap; the key frame's JPEG with the
    map laid over it (the map covers the whole frame: the model sees the frame resized to a square)."""
    heat = np.asarray(heat, np.float32)
    top = heatmaps.peak(heat)
    event.peak_x, event.peak_y = round(top["x"], 4), round(top["y"], 4)
    position = heatmaps.clock_position(heat, axis)
    if position:
        event.clock, event.clock_from, event.clock_to = position["hour"], position["from"], position["to"]
    event.heatmap = event.thumbnail[:-len(".jpg")] + "_map.jpg"
    frame = np.asarray(Image.open(io.BytesIO(key_frame_jpeg)).convert("RGB"))
    return heatmaps.jpeg_bytes(heatmaps.overlay(frame, heat))


def _settings(scorer, options: InspectOptions, distance, note: str = "") -> dict:
    """The settings a reader of the results needs, as short texts."""
    e, q = options.events, options.quality
    gates = [f"dark < {q.dark_below:g}" if q.dark else "", f"uniform < {q.uniform_below:g}" if q.uniform else "",
             f"blur > {q.blur_above:g}" if q.blur else ""]
    return {
        "sampling": f"every {options.every_s:g} s" if options.every_s else "every frame",
        "decisions": scorer.decisions.source,
        "tiers": scorer.decisions.tier_note + ("; an event is 'confident' when its peak reaches the class's "
                                               "confident threshold" if scorer.decisions.tiered else ""),
        "event rules": f"median of {e.smooth}, off below {1 - e.margin:g} x threshold, merge gaps <= "
                       f"{e.merge_gap_s:g} s, point below {e.point_below_s:g} s",
        "quality gate": ", ".join(g for g in gates if g) or "off",
        "distance": (distance.source if distance is not None else "none") + (f" ({note})" if note else ""),
        "model": options.model or "(not named)",
        "heatmaps": (f"key frames' MEF patch affinities; clock positions around the axis at "
                     f"{options.axis[0]:g},{options.axis[1]:g} of the width, height") if _wants_maps(scorer, options)
        else "off",
    }


def _video_src(source: Source, report_dir: str) -> str | None:
    """The video's URL relative to the report, when a browser can play it."""
    if source.is_frame_folder or not source.path.lower().endswith(BROWSER_PLAYABLE) or \
            not os.path.isfile(source.path):
        return None
    relative = os.path.relpath(source.path, report_dir).replace(os.sep, "/")
    return urllib.parse.quote(os.fsencode(relative))  # bytes: a name that is not UTF-8 is quoted as it is


def _csv_text(header: list, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _opt(value) -> str:
    return "" if value is None else str(value)


def _fmt(value, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _confident(decisions):
    """The confident thresholds as an array (inf: never confident), None with one tier."""
    return None if decisions.confident is None else np.asarray(decisions.confident, dtype=np.float64)


def _write_frames(path, codes, times, qualities, probabilities, distance, decisions, readings=None) -> None:
    """frames.csv: per sample its time, distance (and its source), quality and probabilities, and the classes
    that fire at that sample (unsmoothed) by tier: `confident` and `review`; `readings` (the counter's raw
    numbers, NaN: none) add a column counter_m."""
    header = ["sample", "time_s", "distance_m", "distance_source", *(["counter_m"] if readings is not None else []),
              "flagged", *quality.FLAGS, "luma_mean", "luma_std", "blur_effect", *codes, "confident", "review"]
    raw = ([[_fmt(None if math.isnan(r) else r, 3)] for r in readings] if readings is not None
           else [[]] * len(times))
    tiers = (decisions.tiers(probabilities) if len(probabilities)
             else np.zeros((0, len(codes)), dtype=object))
    pick = lambda row, name: " ".join(c for c, tier in zip(codes, row) if tier == name)  # noqa: E731
    rows = ([i, _fmt(t), _fmt(distance.at(t) if distance is not None else None, 3),
             distance.source_at(t) if distance is not None else "", *counter, int(q.flagged),
             *(int(getattr(q, f)) for f in quality.FLAGS), _fmt(q.luma_mean, 2), _fmt(q.luma_std, 2),
             _fmt(q.blur_effect, 4), *(_fmt(p) for p in row), pick(tier, "confident"), pick(tier, "review")]
            for i, (t, q, row, counter, tier) in enumerate(zip(times, qualities, probabilities, raw, tiers)))
    fileio.write_text(path, _csv_text(header, rows))


def _write_events(folder, source, status, codes, decisions, found, settings) -> None:
    named = list(dict.fromkeys(s for e in found for s in e.standard_codes))  # standards, first seen first
    header = ["event", "class", "kind", "start_s", "end_s", "duration_s", "start_m", "end_m", "start_m_source",
              "end_m_source", "peak_probability", "peak_s", "samples", "thumbnail", "tier", "clock", "clock_from",
              "clock_to", "peak_x", "peak_y", "heatmap", *(f"code_{s}" for s in named)]
    rows = ([n + 1, e.code, e.kind, _fmt(e.start_s, 3), _fmt(e.end_s, 3), _fmt(e.duration_s, 3),
             _fmt(e.start_m, 3), _fmt(e.end_m, 3), e.start_m_source, e.end_m_source, _fmt(e.peak_probability),
             _fmt(e.peak_s, 3), e.samples, "thumbnails/" + e.thumbnail, e.tier, _opt(e.clock), _opt(e.clock_from),
             _opt(e.clock_to), _fmt(e.peak_x, 4), _fmt(e.peak_y, 4), "thumbnails/" + e.heatmap if e.heatmap else "",
             *(e.standard_codes.get(s, "") for s in named)]
            for n, e in enumerate(found))
    fileio.write_text(os.path.join(folder, EVENTS_CSV), _csv_text(header, rows))
    fileio.write_json(os.path.join(folder, EVENTS_JSON), {
        "video": source.name, "source": source.shown, "status": status.state, "message": status.message,
        "duration_s": status.duration_s, "classes": list(codes),
        "thresholds": dict(zip(codes, np.asarray(decisions.threshold, dtype=float).tolist())),
        # null: never confident; absent with one tier (no calibration, or one older than the tiers)
        "confident_thresholds": ({c: (float(t) if np.isfinite(t) else None) for c, t in zip(codes, decisions.confident)}
                                 if decisions.tiered else None),
        "tiers": decisions.tier_note,
        "settings": settings, "events": [dict(e.as_dict(), thumbnail="thumbnails/" + e.thumbnail,
                        heatmap="thumbnails/" + e.heatmap if e.heatmap else None) for e in found],
    })


def write_summary(out_dir: str, inputs: list, codes, digest: str) -> list:
    """OUT/summary.csv from the records present: one row per input, "pending" where none is (yet)."""
    header = ["video", "source", "status", "message", "duration_s", "decoded_s", "frames", "flagged", "events",
              *(f"events_{code}" for code in codes), "distance", "notes"]
    rows = []
    for source in inputs:
        record = finished_record(out_dir, source, digest)
        if record is None:
            rows.append(dict(zip(header, [source.name, source.shown, PENDING] + [""] * (len(header) - 3))))
            continue
        counts = record["events"]
        rows.append(dict(zip(header, [
            source.name, source.shown, record["status"], record["message"], _fmt(record["duration_s"], 3),
            _fmt(record["decoded_s"], 3), record["frames"], record["flagged"], sum(counts.values()),
            *(counts.get(code, 0) for code in codes), record.get("distance", ""),
            "; ".join(str(n) for n in record.get("notes") or [])])))
    fileio.write_text(os.path.join(out_dir, SUMMARY), _csv_text(header, ([r[h] for h in header] for r in rows)))
    return rows
