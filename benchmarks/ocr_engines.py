"""Why RapidOCR: the two OCR engines that need nothing fetched, on the same crops of our synthetic counters.

    python benchmarks/ocr_engines.py [--frames 20]

For each counter style, --frames frames (720x576) are rendered; the counter's crop is the box where the frame
with the counter differs from the same frame without it, widened as ocr.locate widens it. Each engine reads
each crop once: a read is right when its number equals the text on screen. Printed: right reads and
milliseconds per crop (wall, one thread) per style and engine.
  rapidocr    the recogniser inspect uses (inspection/ocr.py: PP-OCRv4 in the rapidocr-onnxruntime wheel)
  tesseract   Debian's tesseract-ocr 5 through pytesseract (one line, --psm 7, digits, "." and "m" only), the
              grey crop scaled x2 and made dark-on-light as Tesseract prefers; only when pytesseract and the
              tesseract program are installed (neither is a dependency of the project).
"""
import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args(argv)

    from sfr_jax.data import synthetic_video as sv
    from sfr_jax.inspection import ocr

    def rapid(crop):
        return ocr.parse_number(ocr.recognise(crop)[0])[0]

    engines = {"rapidocr": rapid}
    try:
        import pytesseract

        def tesseract(crop):
            grey = Image.fromarray(crop).convert("L")
            grey = np.asarray(grey.resize((grey.width * 2, grey.height * 2), Image.BICUBIC))
            grey = 255 - grey if grey.mean() < 128 else grey
            text = pytesseract.image_to_string(Image.fromarray(grey),
                                               config="--psm 7 -c tessedit_char_whitelist=0123456789.m")
            return ocr.parse_number(text)[0]

        pytesseract.get_tesseract_version()
        engines["tesseract"] = tesseract
    except Exception as error:  # noqa: BLE001 - an optional comparison
        print(f"tesseract left out: {error}")
    ocr.engine()
    styles = [sv.CounterStyle(font=font, size=size, corner=corner, decimals=decimals, box=box)
              for font, size, corner, decimals, box in (
                  ("default", 0.045, "bottom-left", 2, "dark"), ("default", 0.025, "top-left", 3, "dark"),
                  ("dejavu-sans", 0.06, "bottom-right", 1, "light"), ("dejavu-mono", 0.035, "top-right", 3, "light"),
                  ("dejavu-sans-bold", 0.03, "top-left", 2, "light"))]
    totals = {name: [0, 0, 0.0] for name in engines}
    for style in styles:
        spec = sv.VideoSpec(seed=1, duration_s=args.frames, fps=1, size=(720, 576), counter_style=style,
                            start_m=95.7, speed_m_s=0.4)
        bare = dataclasses.replace(spec, counter=False)
        row = []
        for name, read in engines.items():
            right, spent = 0, 0.0
            for index in range(spec.num_frames):
                frame = sv.render_frame(spec, index)
                ys, xs = np.nonzero(np.abs(frame.astype(int) - sv.render_frame(bare, index)).sum(-1) > 30)
                pad = (ys.max() - ys.min()) // 2
                crop = frame[max(0, ys.min() - pad):ys.max() + pad, max(0, xs.min() - 3 * pad):xs.max() + 3 * pad]
                started = time.perf_counter()
                value = read(crop)
                spent += time.perf_counter() - started
                shown = float(style.text(sv.distance_at(spec, index)).split()[0])
                right += value is not None and abs(value - shown) < 1e-9
            totals[name][0] += right
            totals[name][1] += spec.num_frames
            totals[name][2] += spent
            row.append(f"{name} {right}/{spec.num_frames} right, {1000 * spent / spec.num_frames:.0f} ms/crop")
        print(f"{style.font:<16} {style.size:<5g} {style.corner:<12} {style.decimals} dec {style.box:<5}: "
              + "; ".join(row))
    for name, (right, count, spent) in totals.items():
        print(f"{name}: {right}/{count} right ({100 * right / count:.1f} %), {1000 * spent / count:.1f} ms/crop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
