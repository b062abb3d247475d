"""Raw annotation readers: official Sewer-ML CSVs, SFR-Net split files and WZ-Pipe, validated and sorted.

Reading never crashes on a bad row: rows with an empty file name, a label other than 0/1 or a repeated
file name are returned as rejects with a reason. A header without the needed columns is an error.
"""
from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from sfr_jax.errors import InputError, MissingInput

# The 17 Sewer-ML class codes in the column order of the official files (also the benchmark's order); the
# built-in class set (sfr_jax/text/data/sewerml.yaml) holds the same codes in SFR-Net's seen-then-unseen order.
SEWERML_CODES = ("RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF", "BE", "FO", "GR", "PH", "PB", "OS", "OP", "OK")
# The header of SewerML_Train.csv / SewerML_Val.csv (SPEC §8).
SEWERML_OFFICIAL_HEADER = ["Filename", "WaterLevel", "VA", *SEWERML_CODES, "ND", "Defect"]


@dataclasses.dataclass(frozen=True)
class Reject:
    """One input row left out of the shards, and why. line is the CSV line (header = 1), 0 if unknown."""

    line: int
    filename: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SplitSource:
    """Where one split's annotations and images live. name is the output split ('train', 'val' or 'test');
    `carve` = ('head' | 'tail', fraction) takes only that part of the CSV's rows (a validation split carved
    from the training CSV: the tail, by file name)."""

    name: str
    csv_path: str
    image_dir: str
    carve: tuple | None = None


@dataclasses.dataclass
class SplitRows:
    """The valid rows of one split, sorted by file name; labels [N, C] uint8 in class-set order."""

    source: SplitSource
    filenames: list
    labels: np.ndarray
    lines: list
    rejects: list
    dropped_unseen: int


def _first_dir(*candidates: str) -> str:
    for path in candidates:
        if os.path.isdir(path):
            return path
    return candidates[-1]


def find_sources(dataset: str, root: str, images: str | None = None) -> list:
    """The splits of a raw data set under root.

    sewerml: official SewerML_Train.csv -> 'train', SewerML_Val.csv -> 'test' (the paper tests on Val),
    images in root/images or root (flat); or SFR-Net's sewerml_train.csv/sewerml_test.csv, images in
    root/data. wzpipe: train.csv/test.csv, images in root/masked. `images` overrides the image folder.
    """
    def at(name):
        return os.path.join(root, name)

    if not os.path.isdir(root):
        raise MissingInput(f"raw data folder {root!r} does not exist")
    if dataset == "sewerml":
        if os.path.exists(at("SewerML_Train.csv")) or os.path.exists(at("SewerML_Val.csv")):
            pairs = [("train", "SewerML_Train.csv"), ("test", "SewerML_Val.csv")]
            image_dir = images or _first_dir(at("images"), root)
        elif os.path.exists(at("sewerml_train.csv")) or os.path.exists(at("sewerml_test.csv")):
            pairs = [("train", "sewerml_train.csv"), ("test", "sewerml_test.csv")]
            image_dir = images or at("data")
        else:
            raise MissingInput(
                f"{root}: no Sewer-ML annotations found (expected SewerML_Train.csv + SewerML_Val.csv, "
                "or sewerml_train.csv + sewerml_test.csv)")
    elif dataset == "wzpipe":
        pairs = [("train", "train.csv"), ("test", "test.csv")]
        image_dir = images or at("masked")
    else:
        raise InputError(f"unknown data set {dataset!r} (expected 'sewerml' or 'wzpipe')")
    missing = [name for _, name in pairs if not os.path.exists(at(name))]
    if missing:
        raise MissingInput(f"{root}: missing annotation file(s): {', '.join(missing)}")
    if not os.path.isdir(image_dir):
        raise MissingInput(f"image folder {image_dir!r} does not exist (set it with --images)")
    return [SplitSource(split, at(name), image_dir) for split, name in pairs]


def with_validation(sources: list, fraction: float) -> list:
    """The sources with a 'val' split carved from the training CSV: the last `fraction` of its rows by file
    name (contiguous, so frames of one inspection video rarely fall on both sides), the rest stays train."""
    if not 0 < fraction < 1:
        raise InputError(f"--val-fraction {fraction}: must be between 0 and 1")
    out = []
    for source in sources:
        if source.name == "train":
            out.append(dataclasses.replace(source, carve=("head", fraction)))
            out.append(dataclasses.replace(source, name="val", carve=("tail", fraction)))
        else:
            out.append(source)
    return out


def carve(rows: SplitRows, part: str, fraction: float) -> SplitRows:
    """The head (first 1 - fraction) or the tail (last fraction) of a split's rows in file-name order; the
    CSV's rejects stay with the head."""
    cut = len(rows.filenames) - int(round(len(rows.filenames) * fraction))
    keep = slice(0, cut) if part == "head" else slice(cut, None)
    return SplitRows(rows.source, rows.filenames[keep], rows.labels[keep], rows.lines[keep],
                     rows.rejects if part == "head" else [], rows.dropped_unseen)


def without_unseen(rows: SplitRows, unseen_ids) -> SplitRows:
    """The rows without any unseen label (the zero-shot training split); the dropped ones are counted."""
    unseen = np.zeros(rows.labels.shape[1], bool)
    unseen[list(unseen_ids)] = True
    keep = ~(rows.labels.astype(bool) & unseen).any(axis=1)
    return SplitRows(rows.source, [f for f, k in zip(rows.filenames, keep) if k], rows.labels[keep],
                     [n for n, k in zip(rows.lines, keep) if k], rows.rejects,
                     rows.dropped_unseen + int((~keep).sum()))


def _label(value: str):
    """0 or 1 from a CSV cell ('1', '0', '1.0'); None for anything else."""
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number in (0.0, 1.0) else None


def read_split(source: SplitSource, codes, unseen_ids=(), drop_unseen: bool = False) -> SplitRows:
    """Read and validate one split's CSV; labels come out in the order of `codes` (the class set's order).

    The file-name column is matched case-insensitively ('Filename' or 'filename'); class columns by code.
    With drop_unseen (the zero-shot train split), rows carrying any label in unseen_ids are dropped and
    counted. A repeated file name keeps its first row; later rows are rejected.
    """
    codes = list(codes)
    with open(source.csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise InputError(f"{source.csv_path}: empty file, expected a header row") from None
        lowered = [name.lower() for name in header]
        missing = [] if "filename" in lowered else ["filename"]
        missing += [code for code in codes if code not in header]
        if missing:
            raise InputError(f"{source.csv_path}: missing column(s) {', '.join(missing)} in header {','.join(header)}")
        name_col = lowered.index("filename")
        code_cols = [header.index(code) for code in codes]
        unseen = np.zeros(len(codes), bool)
        unseen[list(unseen_ids)] = True

        kept, rejects, first_line, dropped = [], [], {}, 0
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines are not data
            filename = row[name_col].strip() if name_col < len(row) else ""
            if not filename:
                rejects.append(Reject(line, "", "empty file name"))
                continue
            values = [row[col] if col < len(row) else "" for col in code_cols]
            labels = [_label(value) for value in values]
            bad = [f"{code}={value!r}" for code, value, label in zip(codes, values, labels) if label is None]
            if bad:
                rejects.append(Reject(line, filename, "label not 0/1: " + " ".join(bad)))
                continue
            if filename in first_line:
                rejects.append(Reject(line, filename, f"duplicate file name (first on line {first_line[filename]})"))
                continue
            first_line[filename] = line
            labels = np.asarray(labels, np.uint8)
            if drop_unseen and (labels.astype(bool) & unseen).any():
                dropped += 1
                continue
            kept.append((filename, line, labels))
    kept.sort(key=lambda item: item[0])
    labels = np.stack([item[2] for item in kept]) if kept else np.zeros((0, len(codes)), np.uint8)
    return SplitRows(source, [item[0] for item in kept], labels, [item[1] for item in kept], rejects, dropped)
