"""`sfr-jax demo` (`make demo`): the whole story on an embedded miniature, on a CPU, in minutes.

Stages, each cached under --out (a finished stage is skipped by the next run; an interrupted one resumes):
  1 data      synthetic mini Sewer-ML in the raw format: 'web' frames with captions, 'cctv' frames for SFR-Net
  2 clip      a tiny CLIP pre-trained contrastively on the web frames, saved as a Hugging Face CLIPModel
              folder, then converted with `sfr-jax convert-clip` like real weights
  3 prepare   `sfr-jax prepare` of the cctv set into TFRecords (training images with unseen labels dropped)
  4 train     `sfr-jax train --config configs/demo.py` of SFR-Net on the seen classes, evaluated every epoch
  5 evaluate  plain CLIP zero-shot (no RS, MEF, GR) and SFR-Net on the cctv test split; PR-curve plot
  6 export    `sfr-jax export` to PyTorch and `sfr-jax predict` with a user-style class file
  7 summary   the paper's Table 3 in miniature, and where everything is
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from sfr_jax import cli
from sfr_jax.convert.cli import convert_clip_main, export_main
from sfr_jax.data import prepare, synthetic, tfrecords
from sfr_jax.demo import pretrain as dp
from sfr_jax.eval.evaluator import Evaluator
from sfr_jax.eval import calibration
from sfr_jax.eval.calibration import expected_calibration_error
from sfr_jax.eval.decisions import Decisions
from sfr_jax.eval.metrics import mean_average_precision, sigmoid
from sfr_jax.evaluate import calibrate_main
from sfr_jax.data import synthetic_video
from sfr_jax.fileio import atomic_path, write_json, write_text
from sfr_jax.inspection import compare
from sfr_jax.inspection.cli import main as inspect_main
from sfr_jax.predict import main as predict_main
from sfr_jax.text.classes import load_class_set
from sfr_jax.text.tokenizer import ClipTokenizer
from sfr_jax.train import workdir as workdir_lib
from sfr_jax.train.cli import train_main
from sfr_jax.train.run import setup

STAGES = ("data", "clip", "prepare", "train", "calibrate", "evaluate", "export", "inspect", "summary")
# The synthetic inspection video: a minute of pipe with these defects in view over these seconds.
# Classes the tiny demo model sees at 64 px; FO is an unseen class (zero-shot in the video too).
VIDEO_PLANTED = (("IN", 6.0, 14.0), ("FO", 20.0, 24.0), ("OK", 30.0, 40.0), ("FS", 50.0, 51.5))
VIDEO = dict(duration_s=60.0, fps=5.0, size=(360, 288))
VAL_FRACTION = 0.15  # of the training frames, carved off for `sfr-jax calibrate` (the test split stays untouched)
VERBS = {"convert-clip": convert_clip_main, "prepare": prepare.main, "train": train_main, "export": export_main,
         "predict": predict_main, "calibrate": calibrate_main, "inspect": inspect_main}


def _config_file() -> str:
    """configs/demo.py of this checkout (two folders above this package), else of the working directory."""
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "demo.py"))
    return here if os.path.isfile(here) else os.path.join("configs", "demo.py")


CONFIG_FILE = _config_file()
DEFAULT_OUT, DEFAULT_SEED, DEFAULT_IMAGE_SIZE = "checkpoints/demo", 0, 64  # what configs/demo.py names
# Ablation rows of the paper's Table 3: variants of configs/demo.py.
ABLATIONS = {"+RS": "rs", "+RS +MEF": "rs_mef"}
PRETRAIN_RECIPE = "single-label web set, lr 2e-3, batch 128"  # part of the clip stage's cache key
SIZES = {  # frames per set, cctv test fraction, pre-training steps, SFR-Net steps (-1: the config's epochs)
    "full": dict(web=4000, cctv=3000, test_fraction=0.3, pretrain_steps=1000, train_steps=-1, draw=96),
    "quick": dict(web=400, cctv=320, test_fraction=0.4, pretrain_steps=20, train_steps=6, draw=64),
}
USER_CLASSES = """\
# Your own defect classes, scored zero-shot: code, phrase (for the class graph), description (the prompt).
# SFR-Net never trained on any of them; `sfr-jax predict --classes this_file.yaml` scores them.
name: my_inspection_classes
classes:
  - code: HOLE
    phrase: Drilled connection
    description: a photo of a sewer pipe with drilled connection.
    seen: false
  - code: SEAL
    phrase: Intruding sealing material
    description: a photo of a sewer pipe with intruding sealing material.
    seen: false
  - code: BLOCK
    phrase: Obstacle
    description: a photo of a sewer pipe with obstacle.
    seen: false
  - code: ROOTS
    phrase: Roots
    description: a photo of a sewer pipe with roots.
    seen: false
"""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_json(path: str, payload, sort_keys: bool = True) -> None:
    write_json(path, payload, sort_keys=sort_keys, default=str)


class Stages:
    """Stage bookkeeping under out/stages: a stage is done when its marker holds the same key (its
    parameters and those of every stage before it). A changed key wipes the stage's outputs first."""

    def __init__(self, out: str, fresh: bool):
        self.dir = os.path.join(out, "stages")
        if fresh and os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(self.dir, exist_ok=True)
        self.chain = ""
        self.timings = {}

    def run(self, index: int, name: str, title: str, params: dict, outputs, fn):
        """Run fn() -> info dict unless done with the same key; returns the stage's info."""
        key = _digest([self.chain, name, params])
        self.chain = key
        marker = os.path.join(self.dir, f"{name}.json")
        started = os.path.join(self.dir, f"{name}.started")
        header = f"[{index}/{len(STAGES)}] {title}"
        if os.path.isfile(marker):
            with open(marker) as handle:
                done = json.load(handle)
            if done.get("key") == key:
                _say(f"{header}: done earlier, skipped ({done['seconds']:.0f}s then)")
                self.timings[name] = 0.0
                return done["info"]
            os.remove(marker)
        if os.path.isfile(started):
            with open(started) as handle:
                if handle.read().strip() != key:  # left by a run with other parameters: start over
                    for path in outputs:
                        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else (
                            os.path.exists(path) and os.remove(path))
                else:
                    _say(f"{header}: resuming an unfinished run")
        else:
            for path in outputs:  # outputs without a marker of ours: not trusted
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else (
                    os.path.exists(path) and os.remove(path))
        with open(started, "w") as handle:
            handle.write(key)
        _say(f"{header} ...")
        start = time.time()
        info = fn() or {}
        seconds = time.time() - start
        _atomic_json(marker, {"key": key, "params": params, "seconds": seconds, "info": info})
        os.remove(started)
        self.timings[name] = seconds
        _say(f"    ({seconds:.0f}s)")
        return info


class StageFailed(Exception):
    """A verb the demo ran failed; its own message is already on the screen."""


def _verb(argv, quiet: bool = False) -> int:
    """Run `sfr-jax ARGV` in this process (the verb's own entry point, as the command line), echoing it."""
    _say("    $ sfr-jax " + " ".join(argv))
    verb = VERBS[argv[0]]
    if not quiet:
        code = verb(list(argv[1:]))
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            code = verb(list(argv[1:]))
    if code:
        raise StageFailed(f"`sfr-jax {' '.join(argv)}` exited with code {code} (its message is above)")
    return code


# ---------------------------------------------------------------------------------------------- stages


def stage_data(out: str, size: dict, seed: int) -> dict:
    """Write the web (pre-training) and cctv (target) sets in parallel, and caption the web set."""
    web = dict(num_images=size["web"], seed=1000 + seed, val_fraction=0.1, draw_size=size["draw"])
    cctv = dict(num_images=size["cctv"], seed=2000 + seed, val_fraction=size["test_fraction"],
                draw_size=size["draw"], save_size="draw", style="cctv", normal_fraction=0.4)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {"web": pool.submit(dp.write_web_set, os.path.join(out, "raw", "web"), **web),
                   "cctv": pool.submit(synthetic.write, os.path.join(out, "raw", "cctv"), **cctv)}
        counts = {name: f.result() for name, f in futures.items()}
    dp.write_captions(os.path.join(out, "raw", "web"), load_class_set("sewerml"), seed)
    for name, c in counts.items():
        _say(f"    {name}: {c['train']} + {c['test']} frames in {_show(os.path.join(out, 'raw', name))}")
    return {"counts": counts}


def stage_clip(out: str, size: dict, seed: int, image_size: int) -> dict:
    """Pre-train the tiny CLIP on the web set, save it in HF format, check transformers loads it, convert."""
    class_set = load_class_set("sewerml")
    web = os.path.join(out, "raw", "web")
    images, labels, files = dp.load_split_images(web, "train", class_set, image_size)
    captions = dp.read_captions(web, "train", files)
    tokenizer = ClipTokenizer.default()
    tokens = tokenizer.encode(captions)
    config = dp.tiny_config(image_size, patch_size=max(1, image_size // 8))  # an 8 x 8 patch grid
    _say(f"    {len(images)} captioned web frames, e.g. \"{captions[0]}\"")
    _say(f"    tiny CLIP: ViT {config.vision.hidden_size}w x{config.vision.num_hidden_layers} patch "
         f"{config.vision.patch_size} @ {image_size}px, text {config.text.hidden_size}w x"
         f"{config.text.num_hidden_layers}, vocabulary {config.text.vocab_size} (OpenAI's BPE)")
    model, loss = dp.pretrain(images, tokens, dp.label_groups(labels), config, steps=size["pretrain_steps"],
                              seed=seed, jitter=size["jitter"], log=_say)
    web_zsl = web_zero_shot(model, web, class_set, tokenizer, image_size)
    _say(f"    plain CLIP zero-shot on the web-style test frames (no domain gap): ZSL mAP {100 * web_zsl:.2f}")
    hf_dir = dp.save_hf_clip(model, os.path.join(out, "clip_hf"), tokenizer)
    check = check_hf_clip(hf_dir, model, images[:4])
    _say(f"    saved {hf_dir} (Hugging Face CLIPModel; transformers reloads it, max |diff| {check:.1e})")
    _verb(["convert-clip", "--from", hf_dir, "--out", os.path.join(out, "clip"), "--overwrite"])
    return {"loss": loss, "hf_max_abs_diff": check, "web_zsl_map": web_zsl}


def web_zero_shot(model, web: str, class_set, tokenizer, image_size: int) -> float:
    """Plain CLIP ZSL mAP on the held-out web-style frames: what the CLIP knows before the domain gap."""
    images, labels, _ = dp.load_split_images(web, "test", class_set, image_size)
    unseen = list(class_set.ids("zsl"))
    text = dp.encode_texts(model, tokenizer.encode([dp.class_prompts(class_set.phrases)[i] for i in unseen]))
    return float(mean_average_precision(dp.encode_images(model, images) @ text.T, labels[:, unseen]))


def check_hf_clip(hf_dir: str, model, images_uint8) -> float:
    """Load hf_dir with transformers.CLIPModel and compare its image embeddings with ours; returns max |diff|."""
    import torch  # lazy, as transformers: only this check needs them
    import transformers

    hf = transformers.CLIPModel.from_pretrained(hf_dir).eval()
    pixels = torch.from_numpy(dp.normalise(images_uint8)).permute(0, 3, 1, 2)
    with torch.no_grad():
        theirs = hf.get_image_features(pixel_values=pixels)
        theirs = getattr(theirs, "pooler_output", theirs)
    theirs = theirs.numpy()
    theirs = theirs / np.linalg.norm(theirs, axis=-1, keepdims=True)
    diff = float(np.abs(theirs - dp.encode_images(model, images_uint8)).max())
    if not diff < 1e-3:
        raise RuntimeError(f"{hf_dir}: transformers' CLIPModel disagrees with ours (max |diff| {diff})")
    return diff


def stage_prepare(out: str, image_size: int) -> dict:
    _verb(["prepare", "sewerml", "--root", os.path.join(out, "raw", "cctv"), "--out", os.path.join(out, "data"),
           "--image-size", str(image_size), "--format", "png", "--shard-size", "512", "--workers", "2",
           "--val-fraction", str(VAL_FRACTION), "--no-progress"])
    return {split: tfrecords.read_info(os.path.join(out, "data", split))["num_examples"]
            for split in ("train", "val", "test")}


def train_argv(out: str, workdir: str, seed: int, train_steps: int, variants: list, image_size: int,
               quick: bool) -> list:
    """`sfr-jax train --config configs/demo.py[:variants]` plus only what differs from that file: the paths
    of another --out, another seed or image size, another step count."""
    overrides = {}
    if os.path.abspath(out) != os.path.abspath(DEFAULT_OUT):
        overrides.update({"clip_dir": os.path.join(out, "clip"), "data.dir": os.path.join(out, "data"),
                          "data.descriptions": os.path.join(out, "prompts.txt")})
    if seed != DEFAULT_SEED:
        overrides["seed"] = seed
    if image_size != DEFAULT_IMAGE_SIZE:
        overrides["data.image_size"] = image_size
    if train_steps > 0 and not (quick and train_steps == SIZES["quick"]["train_steps"]):
        overrides.update({"train.max_steps": train_steps, "train.log_every": 2})
    config = CONFIG_FILE + (":" + ",".join((["quick"] if quick else []) + variants) if quick or variants else "")
    return (["train", "--config", config, "--workdir", workdir]
            + [f"--config.{k}={v}" for k, v in overrides.items()])


def write_prompts(out: str) -> str:
    """The class prompts of the demo (one line per class): the caption template with the class phrase."""
    return write_text(os.path.join(out, "prompts.txt"),
                      "\n".join(dp.class_prompts(load_class_set("sewerml").phrases)) + "\n")


def stage_train(out: str, name: str, seed: int, train_steps: int, variants: list, image_size: int,
                quick: bool) -> dict:
    workdir = os.path.join(out, name)
    _verb(train_argv(out, workdir, seed, train_steps, variants, image_size, quick))
    return {"workdir": workdir}


def _tables(config, run, decisions=None):
    """(results, logits, labels) of one evaluation of `run`, scored once and tabulated from those logits."""
    evaluator = Evaluator(run.parts, config, run.mesh, run.shardings)
    logits, labels = evaluator.scores(run.trainable, run.frozen)
    return evaluator.tables(logits, labels, decisions), logits, labels


def evaluate_workdir(workdir: str, split: str | None = None):
    """(results, logits, labels, class set, decisions) of the newest checkpoint of a training workdir over
    the test split (or `split`); decisions from the step's calibration when it has one."""
    config = workdir_lib.run_config(workdir)
    if split:
        with config.unlocked():
            config.data.eval_split = split
    run = setup(config, workdir, restore=True)
    decisions = Decisions.for_step(workdir, run.step, run.parts.class_set)
    return (*_tables(config, run, decisions), run.parts.class_set, decisions)


def _save_scores(path: str, logits, labels, class_set) -> str:
    """GZSL logits and labels of a split for benchmarks/calibration_rules.py."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, logits=logits["gzsl"], labels=labels, seen_ids=np.asarray(class_set.seen_ids),
                     unseen_ids=np.asarray(class_set.unseen_ids), codes=np.asarray(class_set.codes),
                     ciw=class_set.ciw)
    return path


def stage_calibrate(out: str, workdir: str) -> dict:
    """`sfr-jax calibrate` of the trained SFR-Net on the validation frames carved from the training split."""
    _verb(["calibrate", "--workdir", workdir, "--split", "val"])
    _, logits, labels, class_set, _ = evaluate_workdir(workdir, "val")
    return {"val_scores": _save_scores(os.path.join(out, "scores_val.npz"), logits, labels, class_set)}


def evaluate_plain_clip(config, workdir: str):
    """Plain CLIP zero-shot: the same evaluator on SFR-Net with RS, MEF and GR switched off, i.e. the cosine
    of the global image feature and each class prompt's text feature."""
    with config.unlocked():
        config.model.rs = False
        config.model.use_local = False
        config.model.use_gr = False
    return _tables(config, setup(config, workdir, restore=False))


def pr_curve(scores, labels):
    """Micro-averaged precision/recall over all (image, class) pairs, for a PR plot."""
    import numpy as np

    s, y = np.asarray(scores).ravel(), np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(y[order])
    precision = tp / np.arange(1, len(s) + 1)
    recall = tp / max(1, y.sum())
    return precision, recall


def plot_pr(path: str, curves: dict, title: str, chance: float) -> str:
    import matplotlib  # lazy: only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for label, (precision, recall) in curves.items():
        ax.plot(recall, precision, label=label)
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance ({100 * chance:.1f}%)")
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def stage_evaluate(out: str, rows: dict) -> dict:
    """Evaluate plain CLIP and every trained model on the cctv test split; write results.json and the plot."""
    results, curves = {}, {}
    first = None
    for label, workdir in rows.items():
        res, logits, labels, class_set, decisions = evaluate_workdir(workdir)
        results[label] = res
        curves[label] = pr_curve(logits["zsl"], labels[:, list(class_set.ids("zsl"))])
        first = first or (workdir, labels, class_set)
    sfr_logits, decisions = logits, decisions  # the last row is SFR-Net, the calibrated one
    scores = _save_scores(os.path.join(out, "scores_test.npz"), sfr_logits, labels, class_set)
    ece = {"before": expected_calibration_error(sigmoid(sfr_logits["gzsl"]), labels),
           "after": expected_calibration_error(decisions.probabilities(sfr_logits["gzsl"]), labels)}
    workdir, labels, class_set = first
    base, base_logits, _ = evaluate_plain_clip(workdir_lib.run_config(workdir), os.path.join(out, "plain_clip"))
    results = {"CLIP (zero-shot)": base, **results}
    unseen = labels[:, list(class_set.ids("zsl"))]
    curves = {"CLIP (zero-shot)": pr_curve(base_logits["zsl"], unseen), **curves}
    chance = {"zsl": float(unseen.mean(0).mean()), "gzsl": float(labels.mean(0).mean()),
              "zsl_pairs": float(unseen.mean())}
    plot = plot_pr(os.path.join(out, "pr_zsl.png"), {k: (p, r) for k, (p, r) in curves.items()},
                   "ML-ZSL, cctv test split: 5 unseen classes, micro-averaged", chance["zsl_pairs"])
    payload = {"rows": results, "chance": chance, "num_test_images": int(labels.shape[0]),
               "unseen": [class_set.codes[i] for i in class_set.ids("zsl")], "pr_plot": plot,
               "decisions": decisions.source, "ece_test": ece, "test_scores": scores}
    _atomic_json(os.path.join(out, "results.json"), payload, sort_keys=False)  # rows in table order
    return {"results": os.path.join(out, "results.json"), "plot": plot}


def stage_export(out: str, workdir: str) -> dict:
    """Export the trained SFR-Net to PyTorch and score a few test frames, also with user-defined classes."""
    export_dir = os.path.join(out, "export")
    os.makedirs(export_dir, exist_ok=True)
    pth = os.path.join(export_dir, "sfr_demo.pth")
    _verb(["export", "--workdir", workdir, "--to", pth, "--overwrite"])
    classes = write_text(os.path.join(out, "my_classes.yaml"), USER_CLASSES)
    # a few test frames: ones showing the user's classes first
    raw = os.path.join(out, "raw", "cctv")
    with open(os.path.join(raw, "SewerML_Val.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    picks = []
    for code in ("PB", "IS", "FO", "RO"):
        for row in rows:
            if row[code] == "1" and row["Filename"] not in picks:
                picks.append(row["Filename"])
                break
    images = [os.path.join(raw, "images", name) for name in picks]
    predictions = os.path.join(export_dir, "predictions.txt")
    _verb(["predict", "--checkpoint", pth, *images, "--top-k", "3", "--out", predictions])
    user_predictions = os.path.join(export_dir, "predictions_my_classes.txt")
    _verb(["predict", "--checkpoint", pth, *images, "--classes", classes, "--out", user_predictions])
    truth = {row["Filename"]: [c for c in ("RB", "OB", "PF", "DE", "FS", "IS", "RO", "IN", "AF", "BE", "FO", "GR",
                                            "PH", "PB", "OS", "OP", "OK") if row.get(c) == "1"] for row in rows}
    return {"pth": pth, "sidecar": os.path.splitext(pth)[0] + ".json", "classes": classes,
            "predictions": predictions, "user_predictions": user_predictions, "images": images, "truth": {os.path.basename(p): truth[os.path.basename(p)]
                                                                   for p in images}}


def stage_inspect(out: str, workdir: str, seed: int, draw: int) -> dict:
    """Render a synthetic inspection video with planted defects and a distance counter, run `sfr-jax inspect`
    with the trained SFR-Net on it, and compare the events found with the planted intervals."""
    folder = os.path.join(out, "video")
    spec = synthetic_video.VideoSpec(seed=seed, draw_height=draw, **VIDEO,
                                     planted=tuple(synthetic_video.Planted(*p) for p in VIDEO_PLANTED))
    video = synthetic_video.write_video(os.path.join(folder, "pipe_segment.mp4"), spec, "h264")
    distance = synthetic_video.write_distance_csv(os.path.join(folder, "pipe_segment.csv"),
                                                  synthetic_video.distance_table(spec))
    results = os.path.join(out, "inspect")
    _verb(["inspect", "--workdir", workdir, video, "--out", results, "--every", "0.5", "--distance", distance,
           "--no-progress"])
    matches, false_alarms = compare.match(spec.planted, compare.found_events(os.path.join(results, "pipe_segment")))
    long = sorted({e.code for e in false_alarms if e.end_s - e.start_s >= 0.5 * spec.duration_s})
    return {"video": video, "report": os.path.join(results, "pipe_segment", "report.html"),
            "table": compare.table(matches, []), "found": sum(m.found for m in matches),
            "planted": len(matches), "false_alarms": len(false_alarms), "on_most_of_the_video": long}


# ---------------------------------------------------------------------------------------------- summary


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


def decisions_block(res: dict) -> str:
    """Sewer-ML's benchmark metrics of SFR-Net's decisions (GZSL, test split): at the benchmark's 0.5 and at
    the thresholds `sfr-jax calibrate` fitted on the validation frames; ECE before and after."""
    g = res["rows"]["SFR-Net (RS+MEF+GR)"]["gzsl"]
    pct = lambda v: "  n/a" if v is None else f"{100 * v:5.2f}"  # noqa: E731
    lines = ["Decisions of SFR-Net, GZSL on the cctv test split  |  F2-CIW  F1-Normal",
             f"  sigmoid >= 0.5 (Sewer-ML's benchmark threshold)   |  {pct(g.get('F2_CIW'))}    {pct(g.get('F1_normal'))}",
             f"  calibrated on the validation frames                |  {pct(g.get('F2_CIW_calibrated'))}    "
             f"{pct(g.get('F1_normal_calibrated'))}"]
    ece = res.get("ece_test")
    if ece:
        lines.append(f"  expected calibration error (15 bins): {ece['before']:.3f} before, {ece['after']:.3f} after")
    return "\n".join(lines)


def _show(path: str) -> str:
    """A path relative to the working directory when it lies below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def summary(out: str, info: dict, timings: dict, started: float) -> None:
    with open(info["evaluate"]["results"]) as handle:
        res = json.load(handle)
    _say()
    _say("=" * 78)
    _say(f"SFR-Net demo: synthetic mini Sewer-ML, {res['num_test_images']} cctv test frames; "
         f"unseen classes {' '.join(res['unseen'])}")
    _say("=" * 78)
    _say(table(res["rows"], res["chance"]))
    _say("(in %; F1@k = overall F1 of the top-k classes per image; ZSL: the unseen classes only, "
         "GZSL: all 17)")
    web = info.get("clip", {}).get("web_zsl_map")
    if web is not None:
        _say(f"Domain gap: the same plain CLIP scores ZSL mAP {100 * web:.2f} on web-style test frames.")
    _say()
    _say(decisions_block(res))
    exp = info.get("export")
    if exp:
        _say()
        _say("Prediction with the exported PyTorch model and the classes of " + _show(exp["classes"])
             + " (never trained on):")
        with open(exp["user_predictions"]) as handle:
            for line in handle.read().rstrip().splitlines():
                _say("  " + line)
        _say()
        _say("The same frames, the model's own classes (top 3 each), calibrated decisions:")
        with open(exp["predictions"]) as handle:
            for line in handle.read().rstrip().splitlines():
                _say("  " + line)
        _say("  true labels: " + "; ".join(f"{k}: {' '.join(v) or 'normal'}" for k, v in exp["truth"].items()))
    ins = info.get("inspect")
    if ins:
        _say()
        _say(f"Inspection video ({_show(ins['video'])}): {ins['found']} of {ins['planted']} planted defects found, "
             f"{ins['false_alarms']} false alarm(s):")
        for line in ins["table"].splitlines():
            _say("  " + line)
        if ins["false_alarms"]:
            _say(f"  false alarms: {ins['false_alarms']} events (see the report); classes firing over most of the video: "
                 f"{' '.join(ins['on_most_of_the_video']) or 'none'} (their thresholds sit below this model's "
                 "baseline on normal pipe)")
    workdir = info["train"]["workdir"]
    _say()
    _say("Where things are:")
    entries = [
        ("tiny CLIP (Hugging Face)", os.path.join(out, "clip_hf"), ""),
        ("tiny CLIP (converted)", os.path.join(out, "clip"), ""),
        ("TFRecords", os.path.join(out, "data"), ""),
        ("SFR-Net checkpoints", os.path.join(workdir, "checkpoints"), ""),
        ("per-epoch evaluations", os.path.join(workdir, "eval"), ""),
        ("TensorBoard logs", os.path.join(workdir, "tensorboard"), f"  (tensorboard --logdir {_show(workdir)})"),
        ("metrics (JSON)", info["evaluate"]["results"], ""),
        ("PR curves (ZSL, PNG)", info["evaluate"]["plot"], ""),
    ]
    if exp:
        entries += [("PyTorch export", exp["pth"], "  (+ .json sidecar)"), ("predictions", exp["predictions"], "")]
    if ins:
        entries += [("inspection report (HTML)", ins["report"], "")]
    for label, path, note in entries:
        _say(f"  {label:<26} {_show(path)}{note}")
    spent = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    _say(f"\nTotal {time.time() - started:.0f}s ({spent}). Run `make demo` again: finished stages are skipped.")


# ---------------------------------------------------------------------------------------------- main


def build_parser():
    ap = cli.parser("sfr-jax demo", __doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog=__doc__)
    ap.add_argument("--out", default=DEFAULT_OUT, help="cache folder of every stage (default %(default)s)")
    ap.add_argument("--seed", type=cli.nonnegative_int, default=DEFAULT_SEED, help="seed of the data, the pre-training and SFR-Net")
    ap.add_argument("--quick", action="store_true", help="a shortened run (CI): tiny sets, a few steps")
    ap.add_argument("--steps", type=cli.positive_int, default=None, help="SFR-Net training steps (default: the config's epochs)")
    ap.add_argument("--pretrain-steps", type=cli.positive_int, default=None, help="tiny-CLIP pre-training steps")
    ap.add_argument("--pretrain-jitter", action=argparse.BooleanOptionalAction, default=True,
                    help="brightness/contrast/noise jitter in pre-training, as web photos vary (default on)")
    ap.add_argument("--ablation", action=argparse.BooleanOptionalAction, default=None,
                    help="also train the +RS and +RS +MEF rows of Table 3 (default: on, off with --quick)")
    ap.add_argument("--fresh", action="store_true", help="delete --out first and redo every stage")
    ap.add_argument("--image-size", type=cli.positive_int, default=DEFAULT_IMAGE_SIZE, help="image size of the tiny CLIP and SFR-Net")
    return ap


def train_rows(st: Stages, out: str, size: dict, seed: int, image_size: int, quick: bool, ablation: bool) -> dict:
    """Train SFR-Net (and the ablation rows): {table label: workdir}, in table order."""
    base, keys, rows = st.chain, [], {}
    variants = {**(ABLATIONS if ablation else {}), "SFR-Net (RS+MEF+GR)": ""}
    for label, variant in variants.items():
        name = "sfr" if not variant else "ablation_" + label.replace("+", "").replace(" ", "_").lower().strip("_")
        extra = [variant] if variant else []
        params = {"steps": size["train_steps"], "seed": seed, "variants": extra, "quick": quick,
                  "image_size": image_size, "config": _file_digest(CONFIG_FILE)}
        title = "sfr-jax train: SFR-Net on the seen classes" + (f" ({label})" if variant else "")
        st.chain = base  # every training row depends on the data stages only
        result = st.run(4, "train" if not variant else f"train_{name}", title, params, [os.path.join(out, name)],
                        lambda name=name, extra=extra: stage_train(out, name, seed, size["train_steps"], extra,
                                                                   image_size, quick))
        rows[label] = result["workdir"]
        keys.append(st.chain)
    st.chain = _digest(keys)
    return rows


@cli.verb("sfr-jax demo")
def main(argv) -> int:
    """Entry point of `sfr-jax demo`."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.time()
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.steps is not None:
        size["train_steps"] = args.steps
    size["jitter"] = args.pretrain_jitter
    if args.pretrain_steps is not None:
        size["pretrain_steps"] = args.pretrain_steps
    out = os.path.abspath(args.out)
    st = Stages(out, args.fresh)
    info = {}
    seed, image_size = args.seed, args.image_size
    try:
        info["data"] = st.run(1, "data", "synthetic mini Sewer-ML (web + cctv styles)",
                              {"size": size, "seed": seed}, [os.path.join(out, "raw")],
                              lambda: stage_data(out, size, seed))
        info["clip"] = st.run(2, "clip", "tiny CLIP: contrastive pre-training on the web set",
                              {"steps": size["pretrain_steps"], "seed": seed, "image_size": image_size,
                               "jitter": size["jitter"], "recipe": PRETRAIN_RECIPE},
                              [os.path.join(out, "clip_hf"), os.path.join(out, "clip")],
                              lambda: stage_clip(out, size, seed, image_size))
        info["prepare"] = st.run(3, "prepare", "sfr-jax prepare: cctv set -> TFRecords",
                                 {"image_size": image_size}, [os.path.join(out, "data")],
                                 lambda: stage_prepare(out, image_size))
        write_prompts(out)
        ablation = (not args.quick) if args.ablation is None else args.ablation
        rows = train_rows(st, out, size, seed, image_size, args.quick, ablation)
        info["train"] = {"workdir": rows["SFR-Net (RS+MEF+GR)"]}
        info["calibrate"] = st.run(5, "calibrate", "sfr-jax calibrate: decision thresholds on the validation frames",
                                   {"objective": calibration.DEFAULT_OBJECTIVE, "rule": calibration.DEFAULT_RULE},
                                   [], lambda: stage_calibrate(out, info["train"]["workdir"]))
        info["evaluate"] = st.run(6, "evaluate", "evaluation: plain CLIP zero-shot vs SFR-Net (cctv test split)",
                                  {"rows": list(rows)}, [os.path.join(out, "results.json")],
                                  lambda: stage_evaluate(out, rows))
        info["export"] = st.run(7, "export", "sfr-jax export (PyTorch) and sfr-jax predict (your classes)", {},
                                [os.path.join(out, "export")],
                                lambda: stage_export(out, info["train"]["workdir"]))
        info["inspect"] = st.run(8, "inspect", "sfr-jax inspect: a synthetic inspection video, planted vs found",
                                 {"planted": VIDEO_PLANTED, "video": VIDEO}, [os.path.join(out, "video"),
                                                                              os.path.join(out, "inspect")],
                                 lambda: stage_inspect(out, info["train"]["workdir"], seed, size["draw"]))
        _say(f"[{len(STAGES)}/{len(STAGES)}] summary")
        summary(out, info, st.timings, started)
    except StageFailed as error:
        print(f"sfr-jax demo: {error}", file=sys.stderr)
        return 1
    return 0


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()[:16]
    except OSError:
        return "missing"
