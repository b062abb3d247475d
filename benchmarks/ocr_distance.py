"""Distance read off the picture (`inspect --distance ocr`) against the planted distance, over varied counters.

    python benchmarks/ocr_distance.py [--seconds 30] [--every 0.5] [--sizes 0.03,0.045,0.06] [--out table.md]

One 720x576 H.264 synthetic video per (font, size, corner): the counter's units ("m" or none), decimals (1-3)
and box (dark or light) drawn from a seeded generator, the counter hidden for 3 s in the middle, the camera
starting at 97 m (so the number gains a digit at 100 m). Each goes through run.inspect_videos (decode, locate,
read the crop in the decode threads, clean) with a model stub, and frames.csv's distance_m is compared with
synthetic_video.distance_at at the sample's time. Printed per video and overall: samples with the counter
shown, the share within 0.05 m (the target: >= 95 %), the largest error; the hidden samples: how many got an
interpolated distance and their largest error; samples without a distance. Last, one video without a counter
inspected with --length: every distance must come from the length.
"""
import argparse
import csv
import dataclasses
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

TARGET_M = 0.05


class NoModel:
    """The Scorer interface without a model: every frame scores the same."""

    codes, image_size, batch_size = ("RB",), 32, 16

    def __init__(self):
        from sfr_jax.eval.decisions import Decisions

        self.decisions = Decisions.uncalibrated(self.codes)

    def logits(self, x):
        return np.zeros((len(x), 1), np.float32)


def _frames(out, name):
    with open(os.path.join(out, name, "frames.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=0.5)
    parser.add_argument("--sizes", default="0.03,0.045,0.06", help="text heights, fractions of the frame height")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)

    from sfr_jax.data import synthetic_video as sv
    from sfr_jax.inspection import run, sources

    rng = np.random.default_rng(args.seed)
    hidden = (args.seconds / 2 - 1.5, args.seconds / 2 + 1.5)
    specs = {}
    for font in sv.FONTS:
        for size in (float(s) for s in args.sizes.split(",")):
            for corner in sv.CORNERS:
                style = sv.CounterStyle(font=font, size=size, corner=corner, units=str(rng.choice(["m", ""])),
                                        decimals=int(rng.integers(1, 4)), box=str(rng.choice(["dark", "light"])),
                                        hidden=(hidden,))
                name = f"{font}_{size:g}_{corner}"
                specs[name] = sv.VideoSpec(seed=len(specs), duration_s=args.seconds, fps=4, size=(720, 576),
                                           start_m=97.0, speed_m_s=0.15, counter_style=style)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {len(specs)} videos")
    lines = ["| font | size | corner | units | decimals | box | shown | within 0.05 m | max error m | hidden: "
             "interpolated | their max error m | no distance |", "|" + " --- |" * 12]
    totals = np.zeros(5)  # shown, within, hidden, interpolated, none
    worst_shown = worst_hidden = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        for name, spec in specs.items():
            sv.write_video(os.path.join(tmp, "videos", name + ".mp4"), spec, "h264")
        print(f"rendered and encoded in {time.perf_counter() - started:.0f} s")
        inputs, _ = sources.expand([os.path.join(tmp, "videos")])
        out = os.path.join(tmp, "out")
        started = time.perf_counter()
        summary = run.inspect_videos(NoModel(), inputs, out, run.InspectOptions(
            every_s=args.every, distance="ocr", progress=False))
        wall = time.perf_counter() - started
        assert not summary.failed, summary.failed
        samples = 0
        for name, spec in specs.items():
            style, errors_shown, errors_hidden, none, shown, hidden_n = spec.counter_style, [], [], 0, 0, 0
            for row in _frames(out, name):
                samples += 1
                t = float(row["time_s"])
                is_hidden = style.value_at(t, 0.0) is None
                shown, hidden_n = shown + (not is_hidden), hidden_n + is_hidden
                if row["distance_m"] == "":  # counts against the target when the counter was shown
                    none += 1
                    continue
                error = abs(float(row["distance_m"]) - sv.distance_at(spec, t))
                (errors_hidden if is_hidden else errors_shown).append(error)
            within = sum(e <= TARGET_M for e in errors_shown)
            totals += (shown, within, hidden_n, len(errors_hidden), none)
            worst_shown = max([worst_shown, *errors_shown])
            worst_hidden = max([worst_hidden, *errors_hidden])
            lines.append(f"| {style.font} | {style.size:g} | {style.corner} | {style.units or '-'} | {style.decimals} "
                         f"| {style.box} | {shown} | {100 * within / max(1, shown):.1f} % | "
                         f"{max(errors_shown, default=float('nan')):.3f} | {len(errors_hidden)} of {hidden_n} | "
                         f"{max(errors_hidden, default=float('nan')):.3f} | {none} |")
        shown, within, hidden_n, interpolated, none = totals.astype(int)
        lines.append(f"| **all** | | | | | | {shown} | **{100 * within / shown:.2f} %** | {worst_shown:.3f} | "
                     f"{interpolated} of {hidden_n} | {worst_hidden:.3f} | {none} |")
        print("\n".join(lines))
        print(f"inspect --distance ocr (no model): {samples} samples in {wall:.1f} s, {samples / wall:.1f} samples/s")

        bare = dataclasses.replace(next(iter(specs.values())), counter=False)
        path = sv.write_video(os.path.join(tmp, "bare", "nocounter.mp4"), bare, "h264")
        inputs, _ = sources.expand([path])
        run.inspect_videos(NoModel(), inputs, out, run.InspectOptions(every_s=args.every, distance="ocr",
                                                                      length=(97.0, 107.0), progress=False))
        kinds = {r["distance_source"] for r in _frames(out, "nocounter")}
        with open(os.path.join(out, "nocounter", "events.json")) as handle:
            said = json.load(handle)["settings"]["distance"]
        print(f"video without a counter, --length 97:107: distance sources {sorted(kinds)}; settings: {said}")
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
