"""The demo's closing screen: the paper's Table 3 in miniature, the decisions block, each stage's own lines,
and where everything is."""
from __future__ import annotations

import json
import time

from sfr_jax.demo.engine import say, show

SEPARATOR = "=" * 78


def table(results: dict, chance: dict) -> str:
    """The paper's Table 3 in miniature: rows of models, ZSL and GZSL mAP and F1@k (OF1), in %."""
    pct = lambda v: "  n/a" if v is None else f"{100 * v:5.2f}"  # noqa: E731
    first = next(iter(results.values()))
    kz = sorted(int(k.split("@")[1]) for k in first["zsl"] if k.startswith("OF1@"))
    kg = sorted(int(k.split("@")[1]) for k in first["gzsl"] if k.startswith("OF1@"))
    head = (f"{'method':<22}| ZSL mAP " + "".join(f" F1@{k} " for k in kz) + "| GZSL mAP "
            + "".join(f" F1@{k} " for k in kg))
    lines = [head, "-" * len(head)]
    lines.append(f"{'chance (prevalence)':<22}|  {pct(chance['zsl'])}  " + "       " * len(kz)
                 + f"|  {pct(chance['gzsl'])}   " + "       " * len(kg))
    for label, res in results.items():
        z, g = res["zsl"], res["gzsl"]
        lines.append(f"{label:<22}|  {pct(z['mAP'])}  " + "".join(f" {pct(z[f'OF1@{k}'])} " for k in kz)
                     + f"|  {pct(g['mAP'])}   " + "".join(f" {pct(g[f'OF1@{k}'])} " for k in kg))
    return "\n".join(lines)


def decisions_block(res: dict, row: str) -> str:
    """Sewer-ML's benchmark metrics of `row`'s decisions (GZSL, test split): at the benchmark's 0.5 and at
    the thresholds `sfr-jax calibrate` fitted on the validation frames; ECE before and after."""
    g = res["rows"][row]["gzsl"]
    pct = lambda v: "  n/a" if v is None else f"{100 * v:5.2f}"  # noqa: E731
    lines = ["Decisions of SFR-Net, GZSL on the cctv test split  |  F2-CIW  F1-Normal",
             f"  sigmoid >= 0.5 (Sewer-ML's benchmark threshold)   |  {pct(g.get('F2_CIW'))}    {pct(g.get('F1_normal'))}",
             f"  calibrated on the validation frames                |  {pct(g.get('F2_CIW_calibrated'))}    "
             f"{pct(g.get('F1_normal_calibrated'))}"]
    ece = res.get("ece_test")
    if ece:
        lines.append(f"  expected calibration error (15 bins): {ece['before']:.3f} before, {ece['after']:.3f} after")
    return "\n".join(lines)


def show_summary(ctx, stages, results_path: str, timings: dict, started: float) -> None:
    """Print the closing screen from results.json and the stages' own report/where hooks (in stage order)."""
    with open(results_path) as handle:
        res = json.load(handle)
    say()
    say(SEPARATOR)
    say(f"SFR-Net demo: synthetic mini Sewer-ML, {res['num_test_images']} cctv test frames; "
        f"unseen classes {' '.join(res['unseen'])}")
    say(SEPARATOR)
    say(table(res["rows"], res["chance"]))
    say("(in %; F1@k = overall F1 of the top-k classes per image; ZSL: the unseen classes only, GZSL: all 17)")
    entries = []
    for stage in stages:
        for line in (stage.report(ctx) if stage.report else []):
            say(line)
        entries += stage.where(ctx) if stage.where else []
    say()
    say("Where things are:")
    for label, path, note in entries:
        say(f"  {label:<26} {show(path)}{note}")
    spent = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    say(f"\nTotal {time.time() - started:.0f}s ({spent}). Run `make demo` again: finished stages are skipped.")
