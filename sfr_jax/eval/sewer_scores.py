"""Sewer-ML benchmark score files: `<split>_sigmoid.csv`, the input of the benchmark's scoring script.

The script (calculate_results.py with the Sewer-ML code, bitbucket.org/aauvap/sewer-ml; Haurum's copy in
github JoakimHaurum/MSHViT) reads a CSV with a `Filename` column and one probability column per class
code, sorts it by Filename, thresholds it at 0.5 and weighs the classes by their CIW. Write sigmoid(logit)
there so that its figures are the "at 0.5" ones; calibrated decisions are scored with
metrics.sewer_benchmark_fired.
"""
from __future__ import annotations

import csv
import os

import numpy as np

from sfr_jax import fileio
from sfr_jax.data.raw import SEWERML_CODES
from sfr_jax.errors import InputError

# The benchmark's class order (its LabelWeightDict: the official files' column order), not SFR-Net's
# seen-then-unseen order.
BENCHMARK_CODES = SEWERML_CODES


def sigmoid_csv_name(split: str) -> str:
    """The file name of a split's scores: '<split>_sigmoid.csv'."""
    return f"{split}_sigmoid.csv"


def write_sigmoid_csv(path: str, filenames, probs, codes) -> str:
    """Write probabilities [N, len(codes)] (columns in `codes` order) as the benchmark's CSV: Filename, then
    the 17 codes in the benchmark's order, rows sorted by Filename; returns the absolute path.

    `filenames` are the benchmark's Filename values (image file names such as 00000001.png). Values are
    written with repr, so that a probability on either side of 0.5 stays there when the script reads it.
    """
    codes = tuple(codes)
    filenames = [str(name) for name in filenames]
    probs = np.asarray(probs, dtype=np.float64)
    missing = [code for code in BENCHMARK_CODES if code not in codes]
    if missing:
        raise InputError(f"the Sewer-ML benchmark file needs all 17 Sewer-ML classes; the scored classes lack "
                         f"{' '.join(missing)} (score all classes, mode gzsl, of the sewerml class set)")
    if probs.shape != (len(filenames), len(codes)):
        raise ValueError(f"probabilities of shape {probs.shape} for {len(filenames)} images x "
                         f"{len(codes)} classes")
    if len(set(filenames)) != len(filenames):
        raise InputError(f"{path}: the split names an image more than once; the benchmark needs unique Filenames")
    columns = [codes.index(code) for code in BENCHMARK_CODES]
    with fileio.atomic_write(path, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("Filename",) + BENCHMARK_CODES)
        for i in sorted(range(len(filenames)), key=filenames.__getitem__):
            writer.writerow([filenames[i]] + [repr(float(v)) for v in probs[i, columns]])
    return os.path.abspath(path)
