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
    ("inspect: --margin 1", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--margin", "1"], 2, r"argument --margin: '1' is not a fraction in \[0, 1\)"),
    ("inspect: --batch 0", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25a", "--batch", "0"], 2, r"argument --batch: '0' is not a positive integer"),
    ("inspect: class code with ../", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25b", "--classes", "{i25_code_path}"], 2, r"invalid class file: .*code_path.csv: line 3: code 'a/../../x' is not allowed"),
    ("predict: class code with a backslash", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_code_backslash}"], 2, r"code_backslash.yaml: class #2: code 'a\\+b' is not allowed"),
    ("predict: class CSV value under no column", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_stray_value}"], 2, r"stray_value.csv: line 2: value 'oops' under a column without a name"),
    ("predict: class CSV not UTF-8", ["predict", "--checkpoint", "{pth}", "{png}", "--classes", "{i25_latin1}"], 2, r"latin1.csv: not UTF-8 text .*CSV UTF-8"),
    ("inspect: --out is a file", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{text_file}"], 2, r"--out .*notes.txt is a file; give a folder"),
    ("inspect: distance CSV malformed", ["inspect", "--checkpoint", "{pth}", "{i25_video}", "--out", "{tmp}/i25c", "--distance", "{i25_bad_distance}"], 2, r"bad_distance.csv: line 3: distance_m 'x' is not a number"),
    ("inspect: named file not a video", ["inspect", "--checkpoint", "{pth}", "{text_file}", "--out", "{tmp}/i25d"], 2, r"no video found .* in .*notes.txt: not a video file: FFmpeg finds no video stream in it"),
    # issue 25, verbs/records/configs
    ("train: config with a syntax error", ["train", "--config", "{cfg_syntax}", "--workdir", "{tmp}/c25"], 2, r"cfg_syntax.py, line 3: syntax error in the config file"),
    ("train: config with a NameError at import", ["train", "--config", "{cfg_name}", "--workdir", "{tmp}/c25"], 2, r"cfg_name.py, line 2: the config file raised NameError: name 'base' is not defined"),
    ("train: config whose get_config raises", ["train", "--config", "{cfg_raises}:big", "--workdir", "{tmp}/c25"], 2, r"cfg_raises.py, line 6: the config file raised KeyError: 'big'"),
    ("train: config without get_config", ["train", "--config", "{cfg_noget}", "--workdir", "{tmp}/c25"], 2, r"cfg_noget.py: no get_config\(arg=None\) function"),
    ("train: config whose get_config returns nothing", ["train", "--config", "{cfg_none}", "--workdir", "{tmp}/c25"], 2, r"cfg_none.py: get_config\(\) returned NoneType"),
    ("train: override inf", ["train", "{train_args}", "--config.loss.margin=inf"], 2, r"config value loss.margin=inf must be a finite number"),
    ("train: override nan", ["train", "{train_args}", "--config.optim.weight_decay=nan"], 2, r"config value optim.weight_decay=nan must be a finite number"),
    ("train dry run: override -inf", ["train", "--config", "{demo_config}", "--dry-run", "--config.optim.clip_lr=-inf"], 2, r"config value optim.clip_lr=-inf must be a finite number"),
    ("eval: --batch 0", ["eval", "--workdir", "{workdir}", "--batch", "0"], 2, r"argument --batch: '0' is not a positive integer"),
    ("eval: --step -3", ["eval", "--workdir", "{workdir}", "--step", "-3"], 2, r"argument --step: '-3' is not an integer >= 0"),
    ("calibrate: --batch 1e3", ["calibrate", "--workdir", "{workdir}", "--batch", "1e3"], 2, r"argument --batch: '1e3' is not a positive integer"),
    ("calibrate: --objective recall=inf", ["calibrate", "--workdir", "{workdir}", "--split", "test", "--objective", "recall=inf"], 2, r"objective 'recall=inf' is not one of"),
    ("convert: --image-size -224", ["convert-clip", "--from", "{clip}", "--out", "{tmp}/c25b", "--image-size", "-224"], 2, r"argument --image-size: '-224' is not a positive integer"),
    ("synth: --normal-fraction 2", ["synth", "--out", "{tmp}/s25", "--normal-fraction", "2"], 2, r"argument --normal-fraction: '2' is not a probability in \[0, 1\]"),
    ("export: no --to", ["export", "--workdir", "{workdir}"], 2, r"the following arguments are required: --to \(see `sfr-jax export --help`\)"),
    ("prepare: unknown data set", ["prepare", "sewer", "--root", "{raw}", "--out", "{tmp}/p25"], 2, r"argument dataset: invalid choice: 'sewer'"),
    ("calibrate: unknown --rule", ["calibrate", "--workdir", "{workdir}", "--rule", "median"], 2, r"argument --rule: invalid choice: 'median'"),
    ("predict: ONNX sidecar with a string threshold", ["predict", "--checkpoint", "{onnx_str_threshold}", "{png}"], 2, r"str_threshold.json: classes\[1\].threshold is \"0.5\", not a finite number"),
    ("predict: ONNX sidecar without classes", ["predict", "--checkpoint", "{onnx_no_classes}", "{png}"], 2, r"no_classes.json: classes is missing"),
    ("predict: export sidecar with tokens not a list", ["predict", "--checkpoint", "{pth_bad_tokens}", "{png}"], 2, r"bad_tokens.json: class_tokens is not a list"),
    ("predict: calibration record with a null threshold", ["predict", "--workdir", "{wd_bad_record}", "{png}"], 2, r"calibration/3.json: classes\[2\].threshold is null, not a finite number"),
    ("calibrate: a 2-image split", ["calibrate", "--workdir", "{wd_small_split}", "--data-dir", "{small_data}", "--split", "test"], 2, r"2 images\) has fewer than 2 positives for \d+ of the 12 seen classes \(RB \d"),
    ("calibrate: its folder is a file", ["calibrate", "--workdir", "{wd_calibration_file}", "--split", "test"], 2, r"cannot write calibrations into .*calibration: a file of that name exists"),
    ("export: from an .onnx", ["export", "--checkpoint", "{onnx_ok}", "--to", "{tmp}/o25.pth"], 2, r"--checkpoint .*ok.onnx: an ONNX export scores images only \(`sfr-jax predict --checkpoint"),
    ("import: from an .onnx", ["import", "--from", "{onnx_ok}", "--out", "{tmp}/o25wd"], 2, r"--from .*ok.onnx: an ONNX export scores images only"),
]
# Cases that must succeed, with a line their stderr must hold (a fault survived or a silent change said).
NOTED = [
    # issue 25, verbs/records/configs
    ("calibrate: a 2-image split with --force", ["calibrate", "--workdir", "{wd_small_split}", "--data-dir", "{small_data}", "--split", "test", "--force"], 0, r"written anyway \(--force\)"),
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
    _issue25_verb_files(root, inputs)
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
    for suffix in (".onnx", ".json"):  # a pair with its sidecar, before the sidecar goes
        shutil.copy(os.path.splitext(onnx)[0] + suffix, os.path.join(root, "onnx", "ok" + suffix))
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



def _issue25_verb_files(root, inputs):
    """The files of the issue 25 verbs/records/configs cases: the user's broken config files, damaged
    records beside real exports, workdir copies (a damaged calibration record, a file where the calibration
    folder goes, one to calibrate on a prepared 2-image split)."""
    import json

    from sfr_jax.data import prepare, synthetic

    folder = os.path.join(root, "i25v")
    os.makedirs(folder)
    base = "from sfr_jax.config import base_config\n"
    configs = {
        "cfg_syntax": base + "def get_config(arg=None):\n    return base_config(\n",
        "cfg_name": "import os\nDEFAULT = base()\n" + base + "def get_config(arg=None):\n    return base_config()\n",
        "cfg_raises": base + "SIZES = {'small': 8}\n\n\ndef get_config(arg=None):\n    size = SIZES[arg]\n"
                             "    return base_config()\n",
        "cfg_noget": base + "def config():\n    return base_config()\n",
        "cfg_none": base + "def get_config(arg=None):\n    c = base_config()\n",
    }
    for name, text in configs.items():
        inputs[name] = os.path.join(folder, f"{name}.py")
        with open(inputs[name], "w") as f:
            f.write(text)
    onnx_dir = os.path.join(root, "onnx")
    inputs["onnx_ok"] = os.path.join(onnx_dir, "ok.onnx")
    with open(os.path.join(onnx_dir, "ok.json")) as f:
        side = json.load(f)
    for name, edit in (("str_threshold", lambda d: d["classes"][1].update(threshold="0.5")),
                       ("no_classes", lambda d: d.pop("classes"))):
        damaged = json.loads(json.dumps(side))
        edit(damaged)
        shutil.copy(inputs["onnx_ok"], os.path.join(onnx_dir, f"{name}.onnx"))
        with open(os.path.join(onnx_dir, f"{name}.json"), "w") as f:
            json.dump(damaged, f)
        inputs[f"onnx_{name}"] = os.path.join(onnx_dir, f"{name}.onnx")
    pth = os.path.join(folder, "bad_tokens.pth")
    shutil.copy(inputs["pth"], pth)
    with open(os.path.splitext(inputs["pth"])[0] + ".json") as f:
        side = json.load(f)
    side["class_tokens"] = "49406 320 49407"
    with open(os.path.splitext(pth)[0] + ".json", "w") as f:
        json.dump(side, f)
    inputs["pth_bad_tokens"] = pth
    for name in ("wd_bad_record", "wd_small_split", "wd_calibration_file"):
        inputs[name] = os.path.join(folder, name)
        shutil.copytree(inputs["workdir"], inputs[name])
    os.makedirs(os.path.join(inputs["wd_bad_record"], "calibration"))
    platt = {"a": 1.0, "b": 0.0}
    record = {"format": "sfr-jax-calibration/1", "step": 3, "objective": "f2", "unseen_rule": "global",
              "class_set": {"name": "sewerml", "digest": "sha256:0"}, "split": {"name": "val"},
              "rules": {"global": {"logit_threshold": 0.0, "platt": platt}, "zscore": {"z_threshold": 0.0, "platt": platt}},
              "classes": [{"code": c, "threshold": None if i == 2 else 0.5, "platt": platt}
                          for i, c in enumerate(["RB", "OB", "PF"])]}
    with open(os.path.join(inputs["wd_bad_record"], "calibration", "3.json"), "w") as f:
        json.dump(record, f)
    with open(os.path.join(inputs["wd_calibration_file"], "calibration"), "w") as f:
        f.write("not a folder\n")
    raw = os.path.join(folder, "small_raw")
    synthetic.write(raw, 10, seed=11, draw_size=32, save_size="draw", val_fraction=0.2)
    inputs["small_data"] = os.path.join(folder, "small_data")
    assert prepare.main(["sewerml", "--root", raw, "--out", inputs["small_data"], "--image-size", "32", "--workers", "1",
                         "--no-progress"]) == 0


def probe_table(root, pattern: str = "") -> list:
    """Run every case (CASES, then NOTED) whose name matches `pattern` as a real `python -m sfr_jax.main`
    command; rows of (name, want, got, stderr lines, seconds, last stderr line, ok)."""
    import re
    import subprocess
    import sys
    import time

    inputs = build_inputs(root)
    rows = []
    for name, case_argv, want, regex in CASES + NOTED:
        if pattern and not re.search(pattern, name):
            continue
        start = time.time()
        done = subprocess.run([sys.executable, "-m", "sfr_jax.main", *argv(case_argv, inputs)], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        seconds = time.time() - start
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        found = re.search(regex, done.stderr if (name, case_argv, want, regex) in NOTED else last)
        ok = done.returncode == want and "Traceback" not in done.stderr and bool(found)
        rows.append((name, want, done.returncode, len(lines), seconds, last, ok))
        print(f"| {name} | {want} | {done.returncode} | {len(lines)} | {seconds:.1f} | {last[:150]} | "
              f"{'ok' if ok else 'NO'} |", flush=True)
    return rows


def main() -> None:
    """`python tests/bad_input_cases.py [--root DIR] [--match REGEX]`: the whole probe as real commands
    against the sfr_jax on PYTHONPATH, as a markdown table, then the counts."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--root", default=None, help="where the inputs are built (default: a new temporary folder)")
    ap.add_argument("--match", default="", help="only the cases whose name matches this regex")
    args = ap.parse_args()
    for key, value in (("JAX_NUM_CPU_DEVICES", "8"), ("XLA_FLAGS", "--xla_force_host_platform_device_count=8"),
                       ("TF_CPP_MIN_LOG_LEVEL", "2"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
        os.environ.setdefault(key, value)  # as tests/conftest.py: 8 fake CPU devices (the cases count on them)
    print("| case | want | exit | stderr lines | s | last stderr line | ok |\n|---|---|---|---|---|---|---|", flush=True)
    rows = probe_table(args.root or tempfile.mkdtemp(prefix="sfr-probe-"), args.match)
    failing = [r for r in rows if r[:2] not in [(c[0], c[2]) for c in NOTED]]
    print(f"\n{sum(r[6] for r in rows)} of {len(rows)} as promised; {sum(r[3] == 1 for r in failing)} of "
          f"{len(failing)} bad inputs with exactly one stderr line")


__all__ = ["CASES", "NOTED", "argv", "build_inputs", "probe_table", "random_batch", "tiny_config"]

if __name__ == "__main__":  # (run as a script, its folder is on sys.path: train_fixtures imports)
    main()
