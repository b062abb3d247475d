"""The bad-input probe: inputs and faults a new user meets, per verb, with the exit code and the message each
must give (one line naming the file, key or value; never a traceback). Shared by tests/test_bad_inputs.py
(in-process) and by anyone who wants to run them as real commands (`python -m sfr_jax.main ...`)."""
import os
import shutil

import numpy as np
from PIL import Image

from train_fixtures import REPO, cli_args, make_synthetic_data, make_tiny_clip_dir, random_batch, tiny_config

# (id, verb argv with {placeholders} of `inputs`, expected exit code, regex the last stderr line must match)
CASES = [
    # convert-clip
    ("convert: --from missing", ["convert-clip", "--from", "{tmp}/nope", "--out", "{tmp}/c1"], 2, r"nope: no such file or folder"),
    ("convert: --out exists", ["convert-clip", "--from", "{hf_like}", "--out", "{clip}"], 2, r"exists; choose another --out or pass --overwrite"),
    ("convert: --from not a checkpoint", ["convert-clip", "--from", "{text_file}", "--out", "{tmp}/c2"], 2, r"notes.txt is not a PyTorch checkpoint"),
    ("convert: folder without CLIP config", ["convert-clip", "--from", "{bad_hf}", "--out", "{tmp}/c3"], 2, r"not a CLIP config \(no 'vision_config'\)"),
    # prepare
    ("prepare: --root missing", ["prepare", "sewerml", "--root", "{tmp}/noraw", "--out", "{tmp}/p1"], 2, r"noraw' does not exist"),
    ("prepare: CSV lacks class columns", ["prepare", "sewerml", "--root", "{bad_csv_root}", "--out", "{tmp}/p2", "--workers", "1", "--no-progress"], 2, r"SewerML_Train.csv: missing column\(s\) RB"),
    ("prepare: --out unwritable", ["prepare", "sewerml", "--root", "{raw}", "--out", "/proc/sfr-jax-probe/out", "--workers", "1"], 2, r"cannot create the folder /proc/sfr-jax-probe/out"),
    ("prepare: --image-size 0", ["prepare", "sewerml", "--root", "{raw}", "--out", "{tmp}/p3", "--image-size", "0"], 2, r"--image-size and --shard-size must be positive"),
    ("prepare: other options into a prepared folder", ["prepare", "sewerml", "--root", "{raw}", "--out", "{data}", "--image-size", "48", "--workers", "1", "--no-progress"], 2, r"prepared with other options .*image_size: 32 -> 48.*use a new --out"),
    ("prepare: --val-fraction 1.5", ["prepare", "sewerml", "--root", "{raw}", "--out", "{tmp}/p4", "--val-fraction", "1.5"], 2, r"--val-fraction 1.5: must be between 0 and 1"),
    # train
    ("train: no --config", ["train", "--workdir", "{tmp}/t0"], 2, r"--config FILE is required"),
    ("train: no --workdir", ["train", "--config", "{demo_config}"], 2, r"--workdir DIR is required"),
    ("train: misspelt key", ["train", "{train_args}", "--config.optim.hed_lr=1"], 2, r"bad command line or config override: .*hed_lr"),
    ("train: negative learning rate", ["train", "{train_args}", "--config.optim.head_lr=-1"], 2, r"config value optim.head_lr=-1.0 must be positive"),
    ("train: adapter layer outside the CLIP", ["train", "{train_args}", "--config.model.rs_layers=99"], 2, r"model.rs_layers='99': layer\(s\) \[99\] outside the CLIP's 1 vision and 1 text blocks"),
    ("train: dtype name", ["train", "{train_args}", "--config.model.dtype=float16"], 2, r"model.dtype='float16' must be 'float32' or 'bfloat16'"),
    ("train: batch not divisible by devices", ["train", "{train_args}", "--config.train.global_batch=12"], 2, r"train.global_batch=12 is not divisible by the 8 devices"),
    ("train: unknown variant", ["train", "--config", "{demo_config}:bogus", "--workdir", "{tmp}/t1"], 2, r"unknown config variant 'bogus'"),
    ("train: CLIP folder missing", ["train", "{train_args}", "--config.clip_dir={tmp}/noclip"], 2, r"noclip is not a converted CLIP .*sfr-jax convert-clip"),
    ("train: data folder missing", ["train", "{train_args}", "--config.data.dir={tmp}/nodata"], 2, r"nodata/train: no metadata.json; not a prepared split"),
    ("train: resume with another global batch", ["train", "{resume_args}", "--config.train.global_batch=8"], 2, r"was trained with another config \(train.global_batch: 16 -> 8\)"),
    ("train: resume with another model shape", ["train", "{resume_args}", "--config.model.head_hidden=32"], 2, r"model.head_hidden: 16 -> 32"),
    # eval / calibrate
    ("eval: not a workdir", ["eval", "--workdir", "{tmp}"], 2, r"config.json not found: is .* a training workdir"),
    ("eval: step not saved", ["eval", "--workdir", "{workdir}", "--step", "999"], 2, r"no checkpoint of step 999 in .*saved steps: \[3\]"),
    ("eval: --step with --best", ["eval", "--workdir", "{workdir}", "--best", "--step", "3"], 2, r"argument --step: not allowed with argument --best"),
    ("eval: split missing", ["eval", "--workdir", "{workdir}", "--split", "nosplit"], 2, r"nosplit: no metadata.json; not a prepared split"),
    ("calibrate: bad objective", ["calibrate", "--workdir", "{workdir}", "--split", "test", "--objective", "recall=2"], 2, r"recall=2"),
    ("calibrate: split missing", ["calibrate", "--workdir", "{workdir}"], 2, r"val: no metadata.json; not a prepared split"),
    # export / import
    ("export: --to exists", ["export", "--workdir", "{workdir}", "--to", "{pth}"], 2, r"exist; choose another --to or pass --overwrite"),
    ("export: sidecar of --to exists", ["export", "--workdir", "{workdir}", "--to", "{lonely_json_pth}"], 2, r"lonely.json exists; choose another --to or pass --overwrite"),
    ("export: hf layout as a file", ["export", "--workdir", "{workdir}", "--to", "{tmp}/x.pth", "--layout", "hf"], 2, r"the hf layout is a folder"),
    ("export: reference layout as a folder", ["export", "--workdir", "{workdir}", "--to", "{tmp}/xdir"], 2, r"the reference layout is a .pth or .safetensors file"),
    ("export: .pth without sidecar", ["export", "--checkpoint", "{fake_pth}", "--to", "{tmp}/y.pth"], 2, r"fake.pth has no sidecar .*pass --bare-reference"),
    ("predict: not a torch file", ["predict", "--checkpoint", "{fake_pth}", "--bare-reference", "{png}"], 2, r"fake.pth is not a PyTorch checkpoint that can be read safely"),
    ("export: onnx to a .txt", ["export", "--workdir", "{workdir}", "--format", "onnx", "--to", "{tmp}/m.txt"], 2, r"an ONNX export is a file ending in .onnx"),
    ("import: not a torch file", ["import", "--from", "{fake_pth}", "--out", "{tmp}/i1"], 2, r"fake.pth is not a PyTorch checkpoint"),
    ("import: --out exists", ["import", "--from", "{pth}", "--out", "{workdir}"], 2, r"exists; choose another --out or pass --overwrite"),
    # predict
    ("predict: no images", ["predict", "--checkpoint", "{pth}", "{tmp}/none*.png"], 2, r"no images to score"),
    ("predict: every image unreadable", ["predict", "--checkpoint", "{pth}", "{broken_png}"], 2, r"no readable image among the 1 given"),
    ("predict: .pth without sidecar", ["predict", "--checkpoint", "{bare_pth}", "{png}"], 2, r"bare.pth has no sidecar .*pass --bare-reference"),
    ("predict: --out onto a folder", ["predict", "--checkpoint", "{pth}", "{png}", "--out", "{tmp}"], 2, r"--out .* is a folder; give a file name"),
    ("predict: --out unwritable", ["predict", "--checkpoint", "{pth}", "{png}", "--out", "/proc/sfr-jax-probe/p.txt"], 2, r"cannot create the folder /proc/sfr-jax-probe"),
    ("predict: invalid class file", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{bad_classes}"], 2, r"invalid class file: .*duplicate code 'XA'"),
    ("predict: --top-k -1", ["predict", "--checkpoint", "{pth}", "{png}", "--top-k", "-1"], 2, r"--top-k must be >= 0"),
    ("predict: --step with --checkpoint", ["predict", "--checkpoint", "{pth}", "{png}", "--step", "3"], 2, r"--step / --best select a step of a --workdir"),
    ("predict: onnx without sidecar", ["predict", "--checkpoint", "{onnx_no_sidecar}", "{png}"], 2, r"lonely.onnx|sidecar"),
    ("predict: --heatmaps-all without --heatmaps", ["predict", "--checkpoint", "{pth}", "{png}", "--heatmaps-all"], 2, r"--heatmaps-all needs --heatmaps DIR"),
    ("predict: --heatmaps onto a file", ["predict", "--checkpoint", "{pth}", "{png}", "--heatmaps", "{png}"], 2, r"--heatmaps .*frame.png is a file; give a folder"),
    ("predict: --axis outside the picture", ["predict", "--checkpoint", "{pth}", "{png}", "--heatmaps", "{tmp}/hm", "--axis", "1.5,0.5"], 2, r"--axis '1.5,0.5': X and Y must lie in 0..1"),
    # inspect
    ("inspect: no videos", ["inspect", "--checkpoint", "{pth}", "{tmp}/novideo*.mp4", "--out", "{tmp}/ins1"], 2, r"novideo"),
    ("inspect: zero-byte video", ["inspect", "--checkpoint", "{pth}", "{empty_video}", "--out", "{tmp}/ins2", "--no-progress"], 2, r"failed 1 of 1"),
    ("inspect: bad --shard", ["inspect", "--checkpoint", "{pth}", "{empty_video}", "--out", "{tmp}/ins3", "--shard", "3/2"], 2, r"--shard"),
    ("inspect: bad --axis", ["inspect", "--checkpoint", "{pth}", "{empty_video}", "--out", "{tmp}/ins4", "--axis", "half"], 2, r"--axis 'half': expected X,Y fractions"),
    # issue 25, inspect/predict classes
    ("inspect: --fps inf", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--fps", "inf"], 2, r"argument --fps: 'inf' is not a finite number"),
    ("inspect: --every 1e-320", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--every", "1e-320"], 2, r"argument --every: '1e-320' must be between 0.001 and 10000 s"),
    ("inspect: --merge-gap nan", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--merge-gap", "nan"], 2, r"argument --merge-gap: 'nan' is not a finite number"),
    ("inspect: --margin 1", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--margin", "1"], 2, r"argument --margin: '1' must be >= 0 and < 1"),
    ("inspect: --batch 0", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--batch", "0"], 2, r"argument --batch: '0' must be >= 1"),
    ("inspect: class code with ../", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25b", "--classes", "{i25_code_path}"], 2, r"invalid class file: .*code_path.csv: line 3: code 'a/../../x' is not allowed"),
    ("predict: class code with a backslash", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_code_backslash}"], 2, r"code_backslash.yaml: class #2: code 'a\\+b' is not allowed"),
    ("predict: class CSV value under no column", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_stray_value}"], 2, r"stray_value.csv: line 2: value 'oops' under a column without a name"),
    ("predict: class CSV not UTF-8", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_latin1}"], 2, r"latin1.csv: not UTF-8 text .*CSV UTF-8"),
    ("inspect: --out is a file", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{text_file}"], 2, r"--out .*notes.txt is a file; give a folder"),
    ("inspect: distance CSV malformed", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25c", "--distance", "{i25_bad_distance}"], 2, r"bad_distance.csv: line 3: distance_m 'x' is not a number"),
    ("inspect: named file not a video", ["inspect", "--checkpoint", "{pth}", "{text_file}", "--out", "{tmp}/i25d"], 2, r"no video found .* in .*notes.txt: not a video file: FFmpeg finds no video stream in it"),
]
# Cases that must succeed, with a line their stderr must hold (a fault survived or a silent change said).
NOTED = [
    # issue 25, inspect/predict classes
    ("inspect: distance folder without the video's CSV", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25e", "--distance", "{i25_distance_dir}", "--no-progress"], 0, r"pipe25.mp4: no distances: the --distance folder .* has no pipe25.csv"),
    ("inspect: distance CSV after the video", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25f", "--distance", "{i25_late_distance}", "--no-progress"], 0, r"no distances: .*late.csv covers 100-200 s"),
    ("inspect: other files in the folder are named", ["inspect", "--checkpoint", "{pth}", "{i25_video_dir}", "--out", "{tmp}/i25g", "--no-progress"], 0, r"of 1 video\(s\) -> .*; 1 other file\(s\) left out"),
    ("predict: Excel class file (BOM, CRLF, trailing columns)", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_excel_classes}"], 0, r"no calibration for this model"),
    ("predict: output folder created", ["predict", "--checkpoint", "{pth}", "{png}", "--out", "{tmp}/new/dir/p.txt"], 0, r"scored 1 image\(s\) \(0 skipped\) -> .*new/dir/p.txt"),
    ("predict: a corrupt image among good ones", ["predict", "--checkpoint", "{pth}", "{png}", "{broken_png}"], 0, r"scored 1 image\(s\), 1 skipped"),
    ("predict: uncalibrated says so once", ["predict", "--checkpoint", "{pth}", "{png}", "--format", "json"], 0, r"no calibration for this model"),
    ("predict: bare reference when asked", ["predict", "--checkpoint", "{bare_pth}", "--bare-reference", "{png}"], 0, r"read as a bare reference checkpoint"),
    ("train: max_steps beyond the epochs is stated", ["train", "{train_args}", "--config.train.max_steps=100", "--config.train.epochs=1"], 0, r"train.max_steps=100 is more than the \d+ steps of train.epochs=1"),
]


def build_inputs(root) -> dict:
    """Every file and folder the cases name, made once under `root`."""
    root = str(root)
    tmp = os.path.join(root, "tmp")
    os.makedirs(tmp, exist_ok=True)
    clip = make_tiny_clip_dir(os.path.join(root, "clip"))
    data = make_synthetic_data(os.path.join(root, "data"))
    raw = os.path.join(root, "data", "raw")
    inputs = dict(tmp=tmp, clip=clip, data=data, raw=raw, hf_like=clip,
                  demo_config=os.path.join(REPO, "configs", "demo.py"))
    inputs["train_args"] = cli_args(clip, data, os.path.join(tmp, "t_new"), "--config.train.max_steps=1")
    _trained_workdir(root, clip, data, inputs)
    inputs["resume_args"] = cli_args(clip, data, inputs["workdir"], "--config.train.epochs=1")
    _files(root, tmp, inputs)
    _issue25_inspect_files(root, inputs)
    return inputs


def _trained_workdir(root, clip, data, inputs):
    """A workdir trained 3 steps by `sfr-jax train` (the real CLI path), and its PyTorch / ONNX exports."""
    from sfr_jax.exchange import export_main
    from sfr_jax.train.cli import train_main

    workdir = os.path.join(root, "wd")
    assert train_main(cli_args(clip, data, workdir, "--config.train.max_steps=3", "--config.train.epochs=1",
                               "--config.train.eval_every_epochs=100")) == 0
    inputs["workdir"] = workdir
    pth = os.path.join(root, "export", "model.pth")
    assert export_main(["--workdir", workdir, "--to", pth]) == 0
    inputs["pth"] = pth
    bare = os.path.join(root, "bare", "bare.pth")
    os.makedirs(os.path.dirname(bare))
    shutil.copy(pth, bare)
    inputs["bare_pth"] = bare
    onnx = os.path.join(root, "onnx", "lonely.onnx")
    assert export_main(["--workdir", workdir, "--format", "onnx", "--to", onnx]) == 0
    os.remove(os.path.splitext(onnx)[0] + ".json")
    inputs["onnx_no_sidecar"] = onnx


def _files(root, tmp, inputs):
    rng = np.random.default_rng(0)
    png = os.path.join(root, "img", "frame.png")
    os.makedirs(os.path.dirname(png))
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(png)
    broken = os.path.join(root, "img", "broken.png")
    with open(broken, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\nnot an image")
    text = os.path.join(root, "notes.txt")
    with open(text, "w") as f:
        f.write("not a checkpoint\n")
    fake = os.path.join(root, "fake.pth")
    shutil.copy(text, fake)
    bad_hf = os.path.join(root, "bad_hf")
    os.makedirs(bad_hf)
    with open(os.path.join(bad_hf, "config.json"), "w") as f:
        f.write('{"text_config": {}}')
    bad_csv = os.path.join(root, "bad_csv")
    os.makedirs(os.path.join(bad_csv, "images"))
    for name in ("SewerML_Train.csv", "SewerML_Val.csv"):
        with open(os.path.join(bad_csv, name), "w") as f:
            f.write("Filename,Defect\n00000001.png,0\n")
    lonely = os.path.join(root, "lonely", "lonely.pth")
    os.makedirs(os.path.dirname(lonely))
    with open(os.path.splitext(lonely)[0] + ".json", "w") as f:
        f.write("{}")
    classes = os.path.join(root, "bad_classes.yaml")
    with open(classes, "w") as f:
        f.write("classes:\n  - {code: XA, phrase: a, description: a pipe, seen: false}\n"
                "  - {code: XA, phrase: b, description: b pipe, seen: false}\n")
    video = os.path.join(root, "video", "empty.mp4")
    os.makedirs(os.path.dirname(video))
    open(video, "wb").close()
    inputs.update(png=png, broken_png=broken, text_file=text, fake_pth=fake, bad_hf=bad_hf, bad_csv_root=bad_csv,
                  lonely_json_pth=lonely, bad_classes=classes, empty_video=video)


def argv(case_argv, inputs) -> list:
    """A case's argv with its placeholders filled (a list-valued input such as {train_args} is spliced)."""
    out = []
    for word in case_argv:
        key = word[1:-1] if word.startswith("{") and word.endswith("}") else None
        if key and isinstance(inputs.get(key), list):
            out += inputs[key]
        else:
            out.append(word.format(**{k: v for k, v in inputs.items() if isinstance(v, str)}))
    return out


__all__ = ["CASES", "NOTED", "argv", "build_inputs", "random_batch", "tiny_config"]


def _issue25_inspect_files(root, inputs):
    """The files of the issue 25 inspect/predict cases: a real tiny video with a note beside it, class files
    with bad codes and Excel's habits, distance sidecars that do not fit."""
    from sfr_jax.data import synthetic_video as sv

    folder = os.path.join(root, "i25")
    spec = sv.VideoSpec(seed=1, duration_s=1.0, fps=10, size=(32, 32), draw_height=32)
    video = sv.write_video(os.path.join(folder, "videos", "pipe25.mp4"), spec, "h264")
    files = {
        "videos/pipe25.txt": "surveyed upstream\n",
        "code_path.csv": "code,phrase,description,seen\nXA,Thing,a pipe thing,false\na/../../x,Other,a pipe,false\n",
        "code_backslash.yaml": "classes:\n  - {code: XA, phrase: a, description: a pipe, seen: false}\n"
                               "  - {code: 'a\\\\b', phrase: b, description: b pipe, seen: false}\n",
        "stray_value.csv": "code,phrase,description,seen,\nXA,Thing,a pipe thing,false,oops\n",
        "bad_distance.csv": "time_s,distance_m\n0,1\n1,x\n",
        "late.csv": "time_s,distance_m\n100,5\n200,9\n",
        "distances/other.csv": "time_s,distance_m\n0,0\n1,1\n",
    }
    for name, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(folder, "latin1.csv"), "w", encoding="cp1252") as f:
        f.write("code,phrase,description,seen\nXA,Sch\u00e4den,a damaged pipe,false\n")
    with open(os.path.join(folder, "excel.csv"), "w", encoding="utf-8-sig", newline="") as f:
        f.write("code,phrase,description,seen,,\r\nXA,Thing, a pipe thing,false,,\r\nXB,Other,a pipe,false,,\r\n")
    named = {"distance_dir": "distances", "late_distance": "late.csv", "bad_distance": "bad_distance.csv",
             "excel_classes": "excel.csv", "code_path": "code_path.csv", "code_backslash": "code_backslash.yaml",
             "stray_value": "stray_value.csv", "latin1": "latin1.csv"}
    inputs.update(i25_video=video, i25_video_dir=os.path.dirname(video),
                  **{f"i25_{key}": os.path.join(folder, name) for key, name in named.items()})

