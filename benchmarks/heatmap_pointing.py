"""Is the heatmap right? The pointing game and clock positions of MEF's patch affinities on the demo's test
frames, against planted truth (the synthetic renderer returns where it drew each defect).

    python benchmarks/heatmap_pointing.py --demo checkpoints/demo [--demo checkpoints/demo-seed1 ...] [--json F]

For each demo folder (one `sfr-jax demo --seed S --out DIR` each): the trained SFR-Net (DIR/sfr, newest step)
scores the cctv test frames (the PNGs on disk) with maps; the same model with its RS adapters zeroed is plain
CLIP (adapters' `up` at zero make the adapted CLIP the frozen one, SPEC §2), whose MEF softmax is plain
CLIP's map. Every planted defect of every test frame is one trial, for its class's map, whether or not the
class fires:
- pointing game: a hit when the map's maximum patch (a 1/g x 1/g cell) holds a pixel the renderer drew for
  that defect; the centre-prior baseline points at the cell of the same size centred in the picture; a
  uniformly random patch hits with the fraction of the g x g cells the defect touches (point_random: its
  expected rate);
- clock position (sfr_jax.eval.heatmaps.clock_position, axis = picture centre as `--axis` defaults, and the
  scene's true axis): a hit within +-1 hour of the drawn pixels' clock position, on defects the renderer drew
  within a span of at most MAX_SPAN_H hours (ring-shaped or whole-pipe defects have no one clock position);
  the chance rate of a uniform guess is 3/12.
The frames are re-rendered from (seed, index) with `planted=[]` and checked equal to the PNGs on disk first.
"""
import argparse
import csv
import dataclasses
import json
import os
import sys

import numpy as np
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sfr_jax.data import clock, images, synthetic  # noqa: E402
from sfr_jax.eval import heatmaps  # noqa: E402
from sfr_jax.serve.scorer import JaxScorer  # noqa: E402
from sfr_jax.train import workdir as workdir_lib  # noqa: E402

MAX_SPAN_H = 3  # a defect spanning more clock hours than this has no single clock position
CHANCE_CLOCK = 3 / 12  # a uniform guess lands within +-1 hour of the truth


def planted_of(png: str, seed: int, index: int, draw: int) -> list:
    """The Regions of frame `index` (re-rendered; refused unless equal to the PNG on disk)."""
    planted = []
    image, _, _ = synthetic.make_frame(seed, index, draw_size=draw, save_size="draw", style="cctv",
                                       normal_fraction=0.4, planted=planted)
    on_disk = np.asarray(images.open_rgb(png))
    if not np.array_equal(np.asarray(image), on_disk):
        raise SystemExit(f"{png}: the re-rendered frame differs from the file; wrong --seed or draw size?")
    return planted


def plain_clip(loaded):
    """The same model with every RS adapter's up-projection zeroed: the frozen CLIP (SPEC §2)."""
    graphdef, state = nnx.split(nnx.clone(loaded.model))  # a copy: the trained model stays as it is
    leaves = []
    for path, var in nnx.to_flat_state(state):
        names = [str(p) for p in path]
        if "adapter" in names and any(n in ("up", "up_project", "up_proj") for n in names):
            var.set_value(np.zeros(var.get_value().shape, var.get_value().dtype))
        leaves.append((path, var))
    model = nnx.merge(graphdef, nnx.from_flat_state(leaves))
    model.eval()
    return model


def trial_rows(demo: str, seed: int, draw: int, limit: int | None, batch: int) -> list:
    """One dict per planted defect: class, pointing hits (SFR-Net, plain CLIP, centre prior), clock hits."""
    loaded = workdir_lib.load_model(os.path.join(demo, "sfr"))
    ids = loaded.class_set.ids("gzsl")
    sfr = JaxScorer(loaded, ids, batch)
    plain = JaxScorer(dataclasses.replace(loaded, model=plain_clip(loaded)), ids, batch)
    codes = list(sfr.codes)
    raw = os.path.join(demo, "raw", "cctv")
    with open(os.path.join(raw, "SewerML_Val.csv"), newline="") as handle:
        names = [row["Filename"] for row in csv.DictReader(handle)]
    names = names[:limit] if limit else names
    rows = []
    for start in range(0, len(names), batch):
        chunk = names[start:start + batch]
        paths = [os.path.join(raw, "images", n) for n in chunk]
        x = np.stack([images.load(p, sfr.image_size) for p in paths])
        _, maps = sfr.logits_and_maps(x)
        _, plain_maps = plain.logits_and_maps(x)
        for k, (name, path) in enumerate(zip(chunk, paths)):
            index = int(os.path.splitext(name)[0]) - 1
            for region in planted_of(path, seed, index, draw):
                if region.box is None or region.code not in codes:
                    continue
                j = codes.index(region.code)
                g = maps.shape[-1]
                row = {"seed": seed, "frame": name, "class": region.code}
                for label, heat in (("sfr", maps[k, j]), ("plain", plain_maps[k, j])):
                    top = heatmaps.peak(heat)
                    row[f"point_{label}"] = region.covers(top["col"] / g, top["row"] / g, (top["col"] + 1) / g,
                                                          (top["row"] + 1) / g)
                row["point_centre"] = region.covers(0.5 - 0.5 / g, 0.5 - 0.5 / g, 0.5 + 0.5 / g, 0.5 + 0.5 / g)
                row["point_random"] = float(np.mean([region.covers(c / g, r / g, (c + 1) / g, (r + 1) / g)
                                                     for r in range(g) for c in range(g)]))  # expected hit rate
                row["clock_truth"], row["clock_span_deg"] = region.clock, region.span_deg
                if region.span_deg <= 30 * MAX_SPAN_H:
                    for label, heat in (("sfr", maps[k, j]), ("plain", plain_maps[k, j])):
                        for axis_name, axis in (("centre", (0.5, 0.5)), ("true_axis", region.axis)):
                            pos = heatmaps.clock_position(heat, axis)
                            row[f"clock_{label}_{axis_name}"] = bool(
                                pos and clock.hour_distance(pos["hour"], region.clock) <= 1)
                rows.append(row)
    return rows


def rates(rows: list, key: str) -> tuple:
    values = [float(r[key]) for r in rows if key in r]
    return (100.0 * np.mean(values) if values else float("nan")), len(values)


def table(rows: list, keys: list, title: str) -> str:
    classes = sorted({r["class"] for r in rows})
    head = f"| {title} | trials | " + " | ".join(keys) + " |"
    lines = [head, "|" + " --- |" * (len(keys) + 2)]
    for group, subset in [(c, [r for r in rows if r["class"] == c]) for c in classes] + [("all", rows)]:
        n = max(rates(subset, k)[1] for k in keys)
        if not n:
            continue
        lines.append(f"| {group} | {n} | " + " | ".join(f"{rates(subset, k)[0]:.1f}" for k in keys) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", action="append", required=True, help="a `sfr-jax demo` output folder (repeat)")
    ap.add_argument("--seed", type=int, action="append", default=None,
                    help="the demo's --seed, one per --demo (default 0, 1, 2, ...)")
    ap.add_argument("--draw", type=int, default=None, help="the demo's drawing size (default: 64 for --quick "
                                                             "folders, else 96; read from the frames)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N test frames")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", default=None, help="write every trial here")
    args = ap.parse_args(argv)
    seeds = args.seed or list(range(len(args.demo)))
    rows = []
    for demo, seed in zip(args.demo, seeds):
        raw = os.path.join(demo, "raw", "cctv", "images")
        first = sorted(os.listdir(raw))[0]
        draw = args.draw or images.open_rgb(os.path.join(raw, first)).height  # the demo saves at drawing size
        got = trial_rows(demo, 2000 + seed, draw, args.limit, args.batch)  # the demo's cctv set: seed 2000 + S
        print(f"{demo}: {len(got)} planted defects on {len({r['frame'] for r in got})} test frames", file=sys.stderr)
        rows += got
    print("Pointing game (% of planted defects whose class map peaks on the defect):\n")
    print(table(rows, ["point_sfr", "point_plain", "point_centre", "point_random"], "class"))
    print(f"\nClock position within +-1 hour (% of defects drawn within <= {MAX_SPAN_H} hours; chance "
          f"{100 * CHANCE_CLOCK:.0f} %):\n")
    print(table(rows, ["clock_sfr_centre", "clock_plain_centre", "clock_sfr_true_axis", "clock_plain_true_axis"],
                "class"))
    for seed in seeds:
        subset = [r for r in rows if r["seed"] == 2000 + seed]
        print(f"\nseed {seed}: pointing SFR-Net {rates(subset, 'point_sfr')[0]:.1f} / plain CLIP "
              f"{rates(subset, 'point_plain')[0]:.1f} / centre {rates(subset, 'point_centre')[0]:.1f}; clock "
              f"SFR-Net {rates(subset, 'clock_sfr_centre')[0]:.1f} / plain CLIP "
              f"{rates(subset, 'clock_plain_centre')[0]:.1f} (n = {rates(subset, 'point_sfr')[1]}, "
              f"{rates(subset, 'clock_sfr_centre')[1]})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, default=bool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
