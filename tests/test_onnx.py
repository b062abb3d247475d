"""The ONNX export: onnxruntime's logits equal the JAX model's (1e-4, fp32) at any batch, the planted calibration
is baked in, the graph is self-contained and checked, and bad pairs, class files and targets are refused."""
import json
import os
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import yaml

from export_fixtures import jax_logits, random_sfr
from sfr_jax.infer.model import LoadedModel as Loaded, use_classes
from sfr_jax.convert import export, onnx_export
from sfr_jax import exchange as convert_cli
from sfr_jax.serve.onnx import OnnxScorer, check_classes
from sfr_jax.errors import InputError, MissingInput, OutputError
from sfr_jax.eval.decisions import Decisions
from sfr_jax.text.classes import load_class_set
from sfr_jax.text.tokenizer import ClipTokenizer

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # not the 0.5 default


def loaded_tiny(seed=0):
    model, classes = random_sfr(seed=seed)
    return Loaded(model, classes, ClipTokenizer.default(), model.clip.image_size, MEAN, STD, {})


def uint8_images(n, size, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def normalised(images):
    return ((images.astype(np.float32) / 255.0 - np.float32(MEAN)) / np.float32(STD)).astype(np.float32)


def planted(codes, seed=3):
    rng = np.random.default_rng(seed)
    n = len(codes)
    threshold = rng.uniform(0.2, 0.8, n)
    confident = threshold + rng.uniform(0.0, 0.15, n)
    confident[1] = np.inf  # a class that is never confident (its sidecar entry: null)
    return Decisions(tuple(codes), rng.uniform(0.5, 2.0, n), rng.normal(0, 1, n), threshold,
                     "planted test calibration", confident)


def write_classes(path, classes):
    with open(path, "w") as f:
        yaml.safe_dump({"name": "mine", "classes": classes}, f)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One export of a tiny random model (all classes, a planted calibration) and the JAX logits it must give."""
    loaded = loaded_tiny()
    decisions = planted(loaded.class_set.codes)
    path, meta = onnx_export.export_onnx(loaded, str(tmp_path_factory.mktemp("onnx") / "model.onnx"),
                                         decisions=decisions)
    size = loaded.image_size
    images = {b: uint8_images(b, size, seed=b) for b in (1, 7, 32)}
    want = {b: jax_logits(loaded.model, loaded.class_set, normalised(x), ("gzsl",))["gzsl"] for b, x in images.items()}
    return dict(loaded=loaded, decisions=decisions, path=path, meta=meta, images=images, want=want)


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_onnxruntime_logits_match_jax(tiny, batch):
    scorer = OnnxScorer(tiny["path"])
    got = scorer.logits(tiny["images"][batch])
    assert got.dtype == np.float32 and got.shape == (batch, 7)
    np.testing.assert_allclose(got, tiny["want"][batch], atol=1e-4, rtol=0)
    assert scorer.codes == tiny["loaded"].class_set.codes and scorer.image_size == 32


def test_probabilities_are_the_planted_calibration_of_the_jax_logits(tiny):
    d, scorer = tiny["decisions"], OnnxScorer(tiny["path"])
    _, prob = scorer.run(tiny["images"][7])
    z = d.scale[None] * tiny["want"][7] + d.shift[None]
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-z)), atol=1e-5, rtol=0)
    got = scorer.decisions
    assert got.source == d.source and got.codes == d.codes
    for field in ("scale", "shift", "threshold", "confident"):
        np.testing.assert_allclose(getattr(got, field), getattr(d, field), rtol=1e-12)
    assert got.labels(tiny["want"][7]) == d.labels(tiny["want"][7])
    # The tiers travel too: the same tier per image and class as the planted decisions give by hand.
    p = 1 / (1 + np.exp(-z))
    by_hand = np.where(p >= d.confident, "confident", np.where(p >= d.threshold, "review", ""))
    np.testing.assert_array_equal(got.apply(tiny["want"][7])["tier"].astype(str), by_hand)
    assert json.load(open(tiny["meta"]))["classes"][1]["confident_threshold"] is None


def test_graph_is_checked_self_contained_with_a_dynamic_batch(tiny):
    onnx.checker.check_model(tiny["path"], full_check=True)
    proto = onnx.load(tiny["path"])
    assert {o.domain: o.version for o in proto.opset_import}[""] == onnx_export.OPSET
    (image,) = proto.graph.input
    dims = image.type.tensor_type.shape.dim
    assert image.name == "images" and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities"]
    # no text tower: no token-embedding table [49408, width] and no integer (token id) input
    assert all(49408 not in tuple(t.dims) for t in proto.graph.initializer)
    side = json.load(open(tiny["meta"]))
    assert [c["code"] for c in side["classes"]] == list(tiny["loaded"].class_set.codes)
    assert [c["phrase"] for c in side["classes"]] == list(tiny["loaded"].class_set.phrases)
    np.testing.assert_allclose([c["threshold"] for c in side["classes"]], tiny["decisions"].threshold)
    assert side["input"]["normalization_in_graph"] == {"mean": list(MEAN), "std": list(STD)}
    assert side["image_size"] == 32 and side["opset"] == onnx_export.OPSET
    assert side["parity"]["max_abs_logit_difference"] <= 1e-4


def test_empty_batch_and_wrong_images_are_handled(tiny):
    scorer = OnnxScorer(tiny["path"])
    assert scorer.logits(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 7)
    with pytest.raises(InputError, match=r"uint8 images \[B, 32, 32, 3\]"):
        scorer.logits(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(InputError, match="32, 32, 3"):
        scorer.logits(np.zeros((2, 48, 48, 3), np.uint8))


def test_user_classes_and_a_mode_are_baked_as_predict_scores_them(tmp_path):
    """A class file re-encoded with the tokenizer and its GR graph rebuilt (predict's --classes), zsl only."""
    mine = write_classes(tmp_path / "mine.yaml", [
        {"code": "AA", "phrase": "root intrusion", "description": "roots growing through a pipe joint", "seen": True},
        {"code": "BB", "phrase": "deposits", "description": "settled deposits on the pipe invert", "seen": False},
        {"code": "CC", "phrase": "infiltration", "description": "water seeping in through the wall", "seen": False},
        {"code": "DD", "phrase": "deformation", "description": "a pipe squashed out of round", "seen": False}])
    loaded = loaded_tiny(seed=1)
    path, _ = onnx_export.export_onnx(loaded, str(tmp_path / "zsl.onnx"), classes=mine, mode="zsl")
    scorer = OnnxScorer(path)
    assert scorer.codes == ("BB", "CC", "DD") and scorer.mode == "zsl"
    assert not scorer.decisions.calibrated
    images = uint8_images(5, 32, seed=9)
    reference = loaded_tiny(seed=1)  # the same weights, given the classes the way predict does
    use_classes(reference, load_class_set(mine))
    want = jax_logits(reference.model, reference.class_set, normalised(images), ("zsl",))["zsl"]
    np.testing.assert_allclose(scorer.logits(images), want, atol=1e-4, rtol=0)
    assert loaded.class_set.codes == tuple(f"C{i}" for i in range(7))  # the caller's model keeps its classes
    check_classes(scorer, mine)  # the same file is accepted


def test_class_files_that_differ_from_the_baked_set_are_refused_naming_both(tiny, tmp_path):
    scorer = OnnxScorer(tiny["path"])
    same = [{"code": c.code, "phrase": c.phrase, "description": c.description, "seen": c.seen}
            for c in tiny["loaded"].class_set.classes]
    check_classes(scorer, write_classes(tmp_path / "same.yaml", same))
    other = write_classes(tmp_path / "other.yaml", same[:5] + [dict(same[5], code="ZZ")] + same[6:])
    with pytest.raises(InputError, match=r"C0 C1 C2 C3 C4 ZZ C6 differ .* C0 C1 C2 C3 C4 C5 C6"):
        check_classes(scorer, other)
    reworded = write_classes(tmp_path / "reworded.yaml", same[:2] + [dict(same[2], description="another")] + same[3:])
    with pytest.raises(InputError, match="descriptions of C2 differ"):
        check_classes(scorer, reworded)
    with pytest.raises(MissingInput, match="--classes .*nope.yaml: no such file"):
        check_classes(scorer, str(tmp_path / "nope.yaml"))
    (tmp_path / "broken.yaml").write_text("classes: [")
    with pytest.raises(InputError, match="--classes .*broken.yaml: .*not valid YAML"):
        check_classes(scorer, str(tmp_path / "broken.yaml"))


def test_graph_without_our_sidecar_or_with_another_exports_is_refused(tiny, tmp_path):
    bare = tmp_path / "bare.onnx"
    shutil.copy(tiny["path"], bare)
    with pytest.raises(InputError, match="no sidecar .*bare.json.*not an `sfr-jax export --format onnx`"):
        OnnxScorer(str(bare))
    side = json.load(open(tiny["meta"]))
    with open(tmp_path / "bare.json", "w") as f:
        json.dump(dict(side, export_id="0" * 32), f)  # e.g. a crash between renaming the two files
    with pytest.raises(InputError, match="describes another export"):
        OnnxScorer(str(bare))
    with open(tmp_path / "bare.json", "w") as f:
        json.dump(dict(side, format="sfr-jax-export/1"), f)  # the PyTorch export's sidecar
    with pytest.raises(InputError, match="format 'sfr-jax-export/1'"):
        OnnxScorer(str(bare))
    with open(tmp_path / "bare.json", "w") as f:
        json.dump(dict(side, image_size=48), f)
    with pytest.raises(InputError, match=r"uint8 \[batch, 48, 48, 3\]"):
        OnnxScorer(str(bare))


def test_calibration_without_the_exported_classes_and_empty_modes_are_refused(tmp_path):
    loaded = loaded_tiny()
    with pytest.raises(InputError, match="no values for the classes C5 C6"):
        onnx_export.bake(loaded, decisions=planted(loaded.class_set.codes[:5]))
    sub = onnx_export.bake(loaded, mode="zsl", decisions=planted(loaded.class_set.codes))
    assert sub.decisions.codes == ("C4", "C5", "C6")
    np.testing.assert_array_equal(sub.decisions.threshold, planted(loaded.class_set.codes).threshold[4:])
    seen_only = write_classes(tmp_path / "seen.yaml",
                              [{"code": "AA", "phrase": "a", "description": "a b", "seen": True}])
    with pytest.raises(InputError, match="mode 'zsl' selects no class"):
        onnx_export.bake(loaded, classes=seen_only, mode="zsl")


def test_existing_files_are_kept_without_overwrite(tiny, tmp_path):
    for name in ("model.onnx", "model.json"):  # either one of the pair blocks the export
        folder = tmp_path / name.split(".")[1]
        folder.mkdir()
        (folder / name).write_bytes(b"keep me")
        with pytest.raises(OutputError, match=f"{name} exists; .* --overwrite"):
            onnx_export.export_onnx(tiny["loaded"], str(folder / "model.onnx"))
        assert (folder / name).read_bytes() == b"keep me" and os.listdir(folder) == [name]
    with pytest.raises(OutputError, match="ending in .onnx"):
        onnx_export.export_onnx(tiny["loaded"], str(tmp_path / "model.pth"))


def test_a_failed_check_writes_nothing_and_keeps_the_old_pair(tiny, tmp_path, monkeypatch):
    path, meta = str(tmp_path / "model.onnx"), str(tmp_path / "model.json")
    shutil.copy(tiny["path"], path)
    shutil.copy(tiny["meta"], meta)
    before = {p: open(p, "rb").read() for p in (path, meta)}
    monkeypatch.setattr(onnx_export, "max_logit_difference", lambda *a, **k: float("nan"))
    with pytest.raises(RuntimeError, match="differ from the JAX model's by nan.*nothing was written"):
        onnx_export.export_onnx(tiny["loaded"], path, overwrite=True)
    assert {p: open(p, "rb").read() for p in (path, meta)} == before
    assert sorted(os.listdir(tmp_path)) == ["model.json", "model.onnx"]  # no temporaries left
    OnnxScorer(path)  # the old pair still loads


def test_export_cli_writes_an_onnx_pair_from_a_checkpoint(tmp_path, capsys):
    model, classes = random_sfr(seed=2)
    pth, _ = export.export_reference(model, classes, str(tmp_path / "run.pth"), normalization=(MEAN, STD))
    out = str(tmp_path / "deploy" / "run.onnx")
    argv = ["--checkpoint", pth, "--format", "onnx", "--to", out, "--mode", "train"]
    assert convert_cli.export_main(argv) == 0
    assert "opset 18, 4 classes" in capsys.readouterr().out
    scorer = OnnxScorer(out)
    images = uint8_images(3, 32, seed=4)
    want = jax_logits(model, classes, normalised(images), ("train",))["train"]
    np.testing.assert_allclose(scorer.logits(images), want, atol=1e-4, rtol=0)
    assert convert_cli.export_main(argv) == 2  # exists
    assert "exists; choose another --to or pass --overwrite" in capsys.readouterr().err


def test_plain_onnxruntime_runs_the_graph_without_sfr_jax(tiny):
    session = onnxruntime.InferenceSession(tiny["path"], providers=["CPUExecutionProvider"])
    logits, prob = session.run(None, {"images": tiny["images"][7]})
    np.testing.assert_allclose(logits, tiny["want"][7], atol=1e-4, rtol=0)
    assert prob.shape == logits.shape
