"""Reading the distance counter burnt into the picture, with RapidOCR: PaddleOCR's PP-OCRv4 text detector and
recogniser as ONNX files inside the rapidocr-onnxruntime wheel, run by the project's onnxruntime (nothing is
fetched at run time).

Locating, once per video: the detector and recogniser over the top and bottom bands of a sampled frame (burnt-in
counters sit at the edges); the first text there that holds a decimal number (`12.34`, `12.34 m`, `12.34m`,
`Dist 12.3m`) gives the counter's region: its box widened by two characters on each side, so a number that
gains a digit still fits. Until the region is found, the first LOCATE_FIRST samples are searched, then the
8th, 16th, 32nd and every SEARCH_EVERY-th after that: a video without a counter costs about one search per
SEARCH_EVERY samples, and a counter that appears late is found within SEARCH_EVERY samples. Reading, every
later sample: the recogniser alone on that crop (a few milliseconds on one core), in inspect's decode threads.
"""
from __future__ import annotations

import dataclasses
import re
import threading

import numpy as np

ENGINE = "RapidOCR PP-OCRv4, rapidocr-onnxruntime"
BAND = 0.25  # the top and bottom fractions of the frame searched for the counter
LOCATE_FIRST = 5  # samples searched before the search backs off
SEARCH_EVERY = 32  # the sparsest search: a search (~0.3 s) per 32 samples is a few per cent of their model time
MIN_SCORE = 0.6  # the recogniser's confidence below which a text is not taken as a number
# A decimal number not inside a longer dotted or timed run (a date 2024.05.12, a clock 12:30:05), then "m".
NUMBER = re.compile(r"(?<![\d.,:])(\d{1,4}[.,]\d{1,3})(?![\d.,:])\s*(m\b|m$)?", re.IGNORECASE)

_engine, _engine_lock = None, threading.Lock()


def engine():
    """The process's one RapidOCR (models loaded once; onnxruntime sessions are safe across threads). One
    intra-op thread each: the OCR runs in the decode threads beside the model, which has the cores."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            # The detector's default scales a band's short side UP to 736 px (slow); "max" only shrinks. A
            # recogniser input 160 px wide (not 320) holds a counter's crop and halves the time per read.
            _engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, use_cls=False,
                               det_limit_type="max", det_limit_side_len=960, rec_img_shape=[3, 48, 160])
    return _engine


def parse_number(text: str) -> tuple[float | None, bool]:
    """(value, followed by a unit m) of the first decimal number in an OCR text, (None, False) if none."""
    match = NUMBER.search(text or "")
    if match is None:
        return None, False
    return float(match.group(1).replace(",", ".")), bool(match.group(2))


def _grey3(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 -> the luma repeated over 3 channels (the recogniser wants 3; grey makes BGR/RGB moot)."""
    luma = (pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    return np.repeat(luma[..., None], 3, axis=-1)


def recognise(crop: np.ndarray) -> tuple[str, float]:
    """(text, confidence) of one line of text in an RGB crop."""
    results, _ = engine().text_rec([_grey3(crop)])
    text, score = results[0]
    return text, float(score)


def locate(frame: np.ndarray) -> tuple[tuple, float] | None:
    """((x0, y0, x1, y1) of the counter's region, the number read there) in an RGB frame, or None."""
    height, width = frame.shape[:2]
    band = max(1, int(round(height * BAND)))
    found = []
    for top in (0, height - band):
        results, _ = engine()(_grey3(frame[top:top + band]), use_det=True, use_cls=False, use_rec=True)
        for box, text, score in results or ():
            value, unit = parse_number(text)
            if value is None or float(score) < MIN_SCORE:
                continue
            points = np.asarray(box, dtype=np.float64)
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            found.append((not unit, -float(score), (x0, y0 + top, x1, y1 + top, len(text.strip())), value))
    if not found:
        return None
    _, _, (x0, y0, x1, y1, chars), value = min(found, key=lambda f: f[:2])  # a unit "m" first, then confidence
    char = (x1 - x0) / max(1, chars)
    pad_y = 0.25 * (y1 - y0)
    region = (max(0, int(x0 - 2 * char)), max(0, int(y0 - pad_y)), min(width, int(np.ceil(x1 + 2 * char))),
              min(height, int(np.ceil(y1 + pad_y))))
    return region, value


@dataclasses.dataclass
class CounterReader:
    """Reads one video's counter, sample by sample, from several threads: the region is found once (module
    docstring), then only its crop is read. `read` returns the number on screen or None (unreadable)."""

    region: tuple | None = None  # (x0, y0, x1, y1) in frame pixels, once found
    frame_size: tuple | None = None  # (width, height) of the frame the region was found in
    searches: int = 0  # full searches done
    _calls: int = 0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def _search_due(self) -> bool:
        with self._lock:
            call, self._calls = self._calls, self._calls + 1
        return call < LOCATE_FIRST or call % min(SEARCH_EVERY, 1 << (call.bit_length() - 1)) == 0

    def read(self, frame: np.ndarray) -> float | None:
        region = self.region
        if region is None:
            if not self._search_due():
                return None
            found = locate(frame)
            with self._lock:
                self.searches += 1
                if found is None:
                    return None
                if self.region is None:  # another thread may have found it meanwhile: the first one stays
                    self.region, self.frame_size = found[0], (frame.shape[1], frame.shape[0])
            return found[1]
        x0, y0, x1, y1 = region
        crop = frame[y0:y1, x0:x1]
        if min(crop.shape[:2]) < 4:  # a smaller frame than the one the region was found in (a frame folder)
            return None
        text, score = recognise(crop)
        value, _ = parse_number(text)
        return value if score >= MIN_SCORE else None

    def describe(self) -> str:
        """Where the counter was found, for the report's settings."""
        if self.region is None:
            return f"no counter found ({self.searches} frame(s) searched)"
        x0, y0, x1, y1 = self.region
        return f"counter at x {x0}-{x1}, y {y0}-{y1} of {self.frame_size[0]}x{self.frame_size[1]}"
