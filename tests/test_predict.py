"""`sfr-jax predict`, `import` and `export --workdir` on a tiny exported model: files/folders/globs, a corrupt
image skipped, JSON logits = the model's, user classes scored zero-shot (checked against a torch
re-computation), invalid class files rejected, and reference .pth -> workdir -> export being exact."""
import json
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from export_fixtures import jax_logits, random_sfr
from sfr_jax import predict
from sfr_jax import exchange as cli
from sfr_jax.convert import export
from sfr_jax.convert.torch_model import SFRNetTorch, load_state_dict


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model, classes = random_sfr(seed=7)
    tok = _tokenizer()  # prompts as a real run has them, so a workdir that re-tokenises agrees
    model.class_tokens.set_value(np.asarray(tok.encode(list(classes.descriptions)), np.int32))
    ckpt, _ = export.export_reference(model, classes, str(root / "model.pth"), tok)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    folder = root / "images"
    (folder / "sub").mkdir(parents=True)
    names = ["a.png", "b.jpg", "sub/c.png", "d.png"]
    for name, img in zip(names, pixels):
        Image.fromarray(img).save(folder / name, quality=100) if name.endswith(".jpg") else \
            Image.fromarray(img).save(folder / name)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    return dict(root=root, model=model, classes=classes, ckpt=ckpt, folder=folder, pixels=pixels, names=names)


def normalised(setup, names):
    out = []
    for name in names:
        x = np.asarray(Image.open(setup["folder"] / name).convert("RGB"), np.float32) / 255.0
        out.append((x - 0.5) / 0.5)
    return np.stack(out)


def run_json(argv, tmp_path, capsys):
    out = tmp_path / "out.json"
    code = predict.main(argv + ["--format", "json", "--out", str(out)])
    err = capsys.readouterr().err
    return code, (json.load(open(out)) if out.exists() else None), err


def test_folder_with_corrupt_image_scores_the_rest(setup, tmp_path, capsys):
    code, result, err = run_json(["--checkpoint", setup["ckpt"], str(setup["folder"]), "--batch", "3"],
                                 tmp_path, capsys)
    assert code == 0
    assert "broken.png" in err and "skipped" in err
    got = [os.path.relpath(item["path"], setup["folder"]) for item in result["images"]]
    want_names = sorted(["a.png", "b.jpg", "d.png", os.path.join("sub", "c.png")])
    assert sorted(got) == want_names
    assert result["classes"] == list(setup["classes"].codes) and result["mode"] == "gzsl"
    want = jax_logits(setup["model"], setup["classes"], normalised(setup, got), ("gzsl",))["gzsl"]
    logits = np.array([item["logits"] for item in result["images"]])
    np.testing.assert_allclose(logits, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.array([item["scores"] for item in result["images"]]), 1 / (1 + np.exp(-want)),
                               atol=1e-6)


def test_globs_files_modes_topk_and_csv(setup, tmp_path, capsys):
    folder = setup["folder"]
    out = tmp_path / "out.csv"
    code = predict.main(["--checkpoint", setup["ckpt"], str(folder / "*.png"), str(folder / "b.jpg"),
                         str(folder / "missing.png"), "--mode", "zsl", "--top-k", "2", "--format", "csv",
                         "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0 and "missing.png: no such file" in err and "broken.png" in err
    rows = open(out).read().splitlines()
    # every format carries the decision and its tier
    assert rows[0] == "path,top1,top1_score,top2,top2_score,labels,normal,confident"
    assert sorted(os.path.basename(r.split(",")[0]) for r in rows[1:]) == ["a.png", "b.jpg", "d.png"]
    unseen = {setup["classes"].codes[i] for i in setup["classes"].unseen_ids}
    assert all({r.split(",")[1], r.split(",")[3]} <= unseen for r in rows[1:])
    assert predict.main(["--checkpoint", setup["ckpt"], str(folder / "a.png"), "--top-k", "3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["image", "top1"] and table[0].split()[-1] == "decision"
    assert len(table) == 3 and table[2].startswith("(* fires")  # header, the image, the key to the marks


def test_user_classes_are_scored_zero_shot(setup, tmp_path, capsys):
    tok = _tokenizer()
    rows = [{"code": "XA", "phrase": "roots in the pipe", "description": "thin roots hanging from a joint",
             "seen": False},
            {"code": "XB", "phrase": "roots in the pipe", "description": "a mass of roots blocking the pipe",
             "seen": False},  # same phrase as XA: an edge in the rebuilt graph
            {"code": "XC", "phrase": "a cracked wall", "description": "a long crack along the crown",
             "seen": True}]
    path = tmp_path / "my_classes.yaml"
    yaml.safe_dump({"name": "mine", "classes": rows}, open(path, "w"))
    code, result, err = run_json(["--checkpoint", setup["ckpt"], str(setup["folder"] / "a.png"),
                                  str(setup["folder"] / "d.png"), "--classes", str(path)], tmp_path, capsys)
    assert code == 0, err
    assert result["classes"] == ["XA", "XB", "XC"] and result["class_set"] == "mine"
    # independent re-computation in torch: new prompts, adjacency rebuilt from the phrases as GR defines it
    tmodel = SFRNetTorch.from_export(setup["ckpt"])
    with torch.no_grad():
        phrases = torch.from_numpy(tok.encode([r["phrase"] for r in rows]).astype(np.int64))
        t = torch.nn.functional.normalize(tmodel.clip_model.encode_text(phrases), dim=-1)
        a = (t @ t.T > 0.85).float()
        a.fill_diagonal_(1.0)
        d = a.sum(1).rsqrt()
        tmodel.adjacency = d[:, None] * a * d[None, :]
        assert tmodel.adjacency[0, 1] > 0  # the shared phrase made an edge
        tmodel.class_tokens = torch.from_numpy(tok.encode([r["description"] for r in rows]).astype(np.int64))
        tmodel.seen_ids, tmodel.unseen_ids, tmodel.codes = [2], [0, 1], ["XA", "XB", "XC"]
        images = torch.from_numpy(normalised(setup, ["a.png", "d.png"]).transpose(0, 3, 1, 2).copy())
        want = tmodel(images, "gzsl").numpy()
    np.testing.assert_allclose(np.array([i["logits"] for i in result["images"]]), want, atol=1e-4, rtol=0)
    code, result, _ = run_json(["--checkpoint", setup["ckpt"], str(setup["folder"] / "a.png"), "--classes",
                                str(path), "--mode", "zsl"], tmp_path, capsys)
    assert code == 0 and result["classes"] == ["XA", "XB"]


def _tokenizer():
    from sfr_jax.text.tokenizer import ClipTokenizer
    return ClipTokenizer.default()


@pytest.mark.parametrize("problem", ["duplicate", "too_long"])
def test_invalid_class_file_is_rejected(setup, tmp_path, capsys, problem):
    rows = [{"code": "XA", "phrase": "roots", "description": "roots in a pipe", "seen": True},
            {"code": "XB", "phrase": "cracks", "description": "cracks in a pipe", "seen": False}]
    if problem == "duplicate":
        rows[1]["code"] = "XA"
    else:
        rows[1]["description"] = " ".join(["a very long description of a sewer defect"] * 12)
    path = tmp_path / "bad.yaml"
    yaml.safe_dump({"classes": rows}, open(path, "w"))
    code = predict.main(["--checkpoint", setup["ckpt"], str(setup["folder"] / "a.png"), "--classes", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "invalid class file" in err and str(path) in err
    if problem == "duplicate":
        assert "duplicate code 'XA'" in err
    else:
        assert "XB" in err and "context" in err


def test_no_readable_input_is_an_error(setup, tmp_path, capsys):
    assert predict.main(["--checkpoint", setup["ckpt"], str(tmp_path / "nothing*.png")]) == 2
    assert "no file matches" in capsys.readouterr().err
    assert predict.main(["--checkpoint", setup["ckpt"], str(setup["folder"] / "broken.png")]) == 2
    assert "no readable image" in capsys.readouterr().err


def test_import_then_export_workdir_is_exact_and_predicts_the_same(setup, tmp_path, capsys):
    workdir = tmp_path / "wd"
    assert cli.import_main(["--from", setup["ckpt"], "--out", str(workdir)]) == 0
    assert cli.import_main(["--from", setup["ckpt"], "--out", str(workdir)]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
    again = tmp_path / "again.pth"
    assert cli.export_main(["--workdir", str(workdir), "--to", str(again)]) == 0
    before, after = load_state_dict(setup["ckpt"]), load_state_dict(str(again))
    assert sorted(before) == sorted(after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    side_a, side_b = (json.load(open(p)) for p in (setup["ckpt"][:-4] + ".json", str(again)[:-4] + ".json"))
    for key in ("classes", "class_tokens", "adjacency", "model", "image_size", "normalization"):
        assert side_a[key] == side_b[key], key
    assert side_b["provenance"]["step"] == 0
    _, by_ckpt, _ = run_json(["--checkpoint", setup["ckpt"], str(setup["folder"] / "a.png")], tmp_path, capsys)
    _, by_wd, _ = run_json(["--workdir", str(workdir), str(setup["folder"] / "a.png")], tmp_path, capsys)
    assert by_wd["images"][0]["logits"] == by_ckpt["images"][0]["logits"]
