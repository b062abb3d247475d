"""Evaluation results as files: JSON (everything) and Markdown (the paper's tables), written atomically."""
from __future__ import annotations

import json
import os

from sfr_jax.fileio import write_text


def markdown(results: dict, title: str) -> str:
    """ZSL and GZSL tables: mAP, top-k O/C metrics, F2-CIW / F1-Normal, and per-class AP (in %)."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}"
    coverage = ("a PARTIAL evaluation (eval.max_batches): not comparable with full tables" if results.get("partial")
                else "each counted once")
    lines = [f"# {title}", "", f"{results.get('num_images', '?')} images, {coverage}.", ""]
    for mode, label in (("zsl", "ML-ZSL (unseen classes)"), ("gzsl", "ML-GZSL (all classes)")):
        table = results.get(mode)
        if not table:
            continue
        keys = ["mAP"] + [k for k in table if "@" in k] + [k for k in ("F2_CIW", "F1_normal", "F2_CIW_calibrated",
                                                                       "F1_normal_calibrated") if k in table]
        lines += [f"## {label}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys),
                  "| " + " | ".join(pct(table[k]) for k in keys) + " |", ""]
        codes = list(table["AP"])
        lines += ["Per-class AP:", "", "| " + " | ".join(codes) + " |", "|" + "---|" * len(codes),
                  "| " + " | ".join(pct(table["AP"][c]) for c in codes) + " |", ""]
    return "\n".join(lines)


def write(results: dict, directory: str, name: str, title: str) -> tuple[str, str]:
    """`directory/name.json` and `directory/name.md`; returns both paths."""
    json_path, md_path = os.path.join(directory, f"{name}.json"), os.path.join(directory, f"{name}.md")
    write_text(json_path, json.dumps(results, indent=2, sort_keys=True))
    write_text(md_path, markdown(results, title))
    return json_path, md_path
