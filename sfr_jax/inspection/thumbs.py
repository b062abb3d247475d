"""JPEG thumbnails of every sample, kept in one scratch file so that memory does not grow with the video.

The key frames of events are known only once a video is finished; keeping every sample's thumbnail in
memory would grow with the video's length and sampling rate. The spool appends each JPEG to one file
inside the video's temporary output folder (which `fileio.atomic_directory` publishes or removes as a
whole) and remembers offsets; the key frames are read back at the end and the spool is deleted.
"""
from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

THUMB_WIDTH = 240
JPEG_QUALITY = 85


def thumbnail_jpeg(frame: np.ndarray, width: int = THUMB_WIDTH) -> bytes:
    """JPEG bytes of an RGB uint8 frame scaled to `width` px wide (aspect kept)."""
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8), "RGB")
    height = max(1, int(round(image.height * width / image.width)))
    buffer = io.BytesIO()
    image.resize((width, height), Image.BILINEAR).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


class Spool:
    """Append-only store of per-sample JPEGs in `path` (inside a temporary output folder)."""

    def __init__(self, path: str):
        self.path, self.offsets = path, {}
        self._handle = open(path, "wb")  # scratch inside an atomic_directory temp; removed by close()

    def add(self, index: int, jpeg: bytes) -> None:
        self.offsets[index] = (self._handle.tell(), len(jpeg))
        self._handle.write(jpeg)

    def get(self, index: int) -> bytes:
        self._handle.flush()
        start, length = self.offsets[index]
        with open(self.path, "rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def close(self) -> None:
        self._handle.close()
        if os.path.exists(self.path):
            os.remove(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
