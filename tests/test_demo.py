"""The demo: a shortened `sfr-jax demo --quick` end to end (artifacts exist and load with independent tools),
its stage cache, and its small pieces (captions, contrastive loss, PR curve) against independent computations."""
import json
import os

import numpy as np
import pytest

from sfr_jax.demo import context as demo_context
from sfr_jax.demo import engine
from sfr_jax.demo import pr
from sfr_jax.demo import pretrain as demo_pretrain
from sfr_jax.demo import run as demo
from sfr_jax.train.cli import train_main


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    code = demo.main(["--quick", "--out", str(out)])
    assert code == 0
    return out


@pytest.mark.slow
def test_quick_demo_artifacts_load(quick_demo):
    out = quick_demo
    # metrics JSON: both Table-3 rows, finite mAPs, chance = the test split's prevalence
    with open(out / "results.json") as f:
        res = json.load(f)
    assert list(res["rows"]) == ["CLIP (zero-shot)", "SFR-Net (RS+MEF+GR)"]
    for row in res["rows"].values():
        for mode in ("zsl", "gzsl"):
            assert 0.0 <= row[mode]["mAP"] <= 1.0
    assert res["unseen"] == ["PB", "IS", "OP", "FO", "OS"]
    assert 0 < res["chance"]["zsl"] < res["chance"]["gzsl"] < 1

    # the pre-trained CLIP folder loads with transformers and agrees with our converted copy (text tower)
    import torch
    import transformers

    from sfr_jax.models.store import load_clip
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.text.tokenizer import ClipTokenizer

    hf = transformers.CLIPModel.from_pretrained(str(out / "clip_hf")).eval()
    tok = ClipTokenizer.from_pretrained(str(out / "clip_hf"))
    ids = tok.encode(["a photo of a sewer pipe with roots.", "obstacle in a sewer pipe."])
    with torch.no_grad():
        theirs = hf.get_text_features(input_ids=torch.from_numpy(ids.astype(np.int64)))
        theirs = getattr(theirs, "pooler_output", theirs).numpy()
    ours = np.asarray(load_clip(str(out / "clip"), rs=RSConfig(enabled=False)).encode_text(ids))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)

    # the PyTorch export loads with torch (and the reference-layout keys are there), with its sidecar
    state = torch.load(out / "export" / "sfr_demo.pth", map_location="cpu", weights_only=True)
    assert any(k.startswith("clip_model.") for k in state) and "gcn_corrector.gc1.weight" in state
    with open(out / "export" / "sfr_demo.json") as f:
        json.load(f)
    # predictions for the user's classes: one row per picked image, the user's codes as columns, a decision
    lines = (out / "export" / "predictions_my_classes.txt").read_text().strip().splitlines()
    assert lines[0].split()[1:] == ["HOLE", "SEAL", "BLOCK", "ROOTS", "decision"] and len(lines) == 6
    assert lines[-1].startswith("(* fires; probabilities and thresholds: calibrated")
    # the export carries the calibration that `sfr-jax calibrate` fitted on the validation frames
    assert json.load(open(out / "export" / "sfr_demo.json"))["calibration"]["split"]["name"] == "val"
    # the inspection stage: a report and events of the synthetic video
    assert (out / "inspect" / "pipe_segment" / "report.html").is_file()
    assert json.load(open(out / "inspect" / "pipe_segment" / "events.json"))["events"] is not None

    # PR plot is a PNG; TensorBoard events and per-epoch evaluations were written; a checkpoint exists
    from PIL import Image

    with Image.open(out / "pr_zsl.png") as image:
        assert image.format == "PNG" and image.size[0] > 100
    assert any(f.startswith("events.out.tfevents") for _, _, files in os.walk(out / "sfr" / "tensorboard")
               for f in files)
    assert any(f.endswith(".json") for f in os.listdir(out / "sfr" / "eval"))
    assert os.listdir(out / "sfr" / "checkpoints")


@pytest.mark.slow
def test_quick_demo_review_loop(quick_demo):
    """The review stages: the first video reviewed by its planted truth (every model event decided, the video
    marked fully reviewed, the positives it leaves exactly the planted defects), prepared with FO promoted to
    seen, a fine-tuned workdir that starts from the SFR-Net on those data, both videos inspected again with
    its class set."""
    import yaml

    from sfr_jax.demo.stages import inspect as inspect_stage
    from sfr_jax.demo.stages import review
    from sfr_jax.review import record
    from sfr_jax.workdir import Workdir

    out = quick_demo
    folder = str(out / "review" / "reports" / "pipe_segment")
    rec, events = record.load(folder), record.read_events(folder)
    assert record.fully_reviewed(rec)
    planted = [dict(zip(("code", "start_s", "end_s"), p)) for p in inspect_stage.VIDEO_PLANTED]
    final = record.resolved(rec, events)
    assert len([e for e in final if e["model_class"]]) == len(events["events"])
    assert all(e["verdict"] != "pending" for e in final)
    positives = [e for e in final if e["verdict"] in record.POSITIVE]
    for e in positives:  # each lies inside a planted defect of its class (planted ends are exclusive)
        assert any(e["class"] == p["code"] and p["start_s"] <= e["start_s"] <= e["end_s"] < p["end_s"]
                   for p in planted), e
    for p in planted:  # ... and each planted defect is covered from its start
        assert any(e["class"] == p["code"] and e["start_s"] == p["start_s"] for e in positives), p
    for e in final:  # a rejected event is no planted defect of its class
        if e["verdict"] == "rejected":
            assert not any(e["class"] == p["code"] and e["start_s"] < p["end_s"] and p["start_s"] <= e["end_s"]
                           for p in planted), e

    classes = {c["code"]: c["seen"] for c in yaml.safe_load(open(out / "review" / "data" / "classes.yaml"))["classes"]}
    assert classes[review.REVIEWED_CLASS] and not classes["OP"]
    config = Workdir(str(out / "review" / "finetuned")).read_config()
    assert config.train.init_from == str(out / "sfr") and config.data.class_set.endswith("classes.yaml")
    for name in review.NAMES:
        after = json.load(open(out / "review" / "after" / name / "events.json"))
        assert after["classes"] == list(classes)
    assert os.listdir(out / "review" / "finetuned" / "calibration")


@pytest.mark.slow
def test_second_run_skips_every_stage(quick_demo, capsys):
    capsys.readouterr()
    assert demo.main(["--quick", "--out", str(quick_demo)]) == 0
    text = capsys.readouterr().out
    assert text.count("done earlier, skipped") == 12, text
    assert "CLIP (zero-shot)" in text and "SFR-Net (RS+MEF+GR)" in text


@pytest.mark.slow
def test_train_with_configs_demo_reproduces_the_demos_sfr_net(quick_demo, tmp_path):
    """configs/demo.py is the demo's own training config: `sfr-jax train --config configs/demo.py:quick` with
    the demo's paths (what `make demo` fills in for another --out) gives the same metrics."""
    out = quick_demo
    paths = [f"--config.clip_dir={out / 'clip'}", f"--config.data.dir={out / 'data'}",
             f"--config.data.descriptions={out / 'prompts.txt'}"]
    workdir = tmp_path / "again"
    assert train_main(["--config", f"{demo_context.CONFIG_FILE}:quick", "--workdir", str(workdir), *paths]) == 0
    name = sorted(n for n in os.listdir(out / "sfr" / "eval") if n.endswith(".json"))[-1]
    demo_eval = json.load(open(out / "sfr" / "eval" / name))
    again = json.load(open(workdir / "eval" / name))
    for mode in ("zsl", "gzsl"):
        assert again[mode]["mAP"] == demo_eval[mode]["mAP"] and again[mode]["AP"] == demo_eval[mode]["AP"]


def test_stage_cache_reruns_on_changed_parameters(tmp_path, capsys):
    calls = []

    def work(tag):
        def fn():
            (tmp_path / "out").mkdir(exist_ok=True)
            (tmp_path / "out" / "file").write_text(tag)
            calls.append(tag)
            return {"tag": tag}
        return fn

    outputs = [str(tmp_path / "out")]
    assert engine.Stages(str(tmp_path), False).run(1, "a", "A", {"p": 1}, outputs, work("x")) == {"tag": "x"}
    assert engine.Stages(str(tmp_path), False).run(1, "a", "A", {"p": 1}, outputs, work("y")) == {"tag": "x"}
    assert calls == ["x"]  # cached
    assert engine.Stages(str(tmp_path), False).run(1, "a", "A", {"p": 2}, outputs, work("z")) == {"tag": "z"}
    assert calls == ["x", "z"]
    # a downstream stage reruns when an upstream stage's parameters change
    st = engine.Stages(str(tmp_path), False)
    st.run(1, "a", "A", {"p": 2}, outputs, work("z"))
    st.run(2, "b", "B", {}, [], lambda: calls.append("b"))
    st = engine.Stages(str(tmp_path), False)
    st.run(1, "a", "A", {"p": 3}, outputs, work("w"))
    st.run(2, "b", "B", {}, [], lambda: calls.append("b"))
    assert calls == ["x", "z", "b", "w", "b"]


def test_stage_after_depends_only_on_the_stages_it_names(tmp_path):
    """A training row (after=("prepare",)) is not redone when a sibling row changes; the stage after all rows is."""
    calls = []

    def plan(b_param):
        return [engine.Stage("prep", "P", lambda ctx: calls.append("prep")),
                engine.Stage("a", "A", lambda ctx: calls.append("a"), after=("prep",), group="rows"),
                engine.Stage("b", "B", lambda ctx: calls.append("b"), params=lambda ctx: {"p": b_param},
                             after=("prep",), group="rows"),
                engine.Stage("join", "J", lambda ctx: calls.append("join"), after=("a", "b"))]

    ctx = demo_context.Context(out=str(tmp_path))
    engine.Stages(str(tmp_path), False).run_all(plan(1), ctx)
    engine.Stages(str(tmp_path), False).run_all(plan(1), ctx)
    assert calls == ["prep", "a", "b", "join"]
    engine.Stages(str(tmp_path), False).run_all(plan(2), ctx)
    assert calls == ["prep", "a", "b", "join", "b", "join"]
    assert set(ctx.info) == {"prep", "a", "b", "join"}


def test_help_lists_every_stage_of_the_run(capsys):
    """--help is built from the stage list: every group of a full run, numbered in order, then the summary."""
    assert demo.main(["--help"]) == 0
    text = capsys.readouterr().out
    groups = list(dict.fromkeys(s.group or s.name for s in demo.stages(demo_context.Context(out="x"))))
    assert groups == ["data", "clip", "prepare", "train", "calibrate", "evaluate", "export", "inspect", "review",
                      "finetune"]
    for number, group in enumerate(groups + ["summary"], 1):
        assert f"  {number} {group} " in text, group


def test_demo_runs_verbs_only_through_the_verb_table():
    """No demo module imports a verb module (they call sfr_jax.verbs.run by name): read from the sources with
    Python's own parser, independent of the import-linter contract."""
    import ast
    import pathlib

    from sfr_jax import verbs

    root = pathlib.Path(demo.__file__).parent
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                assert name not in verbs.VERB_MODULES or name == "sfr_jax.data.synthetic", (path, name)


def test_interrupted_stage_with_other_parameters_starts_clean(tmp_path):
    out = tmp_path / "work"
    out.mkdir()
    (out / "stale").write_text("from another run")
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "a.started").write_text("some-other-key")
    seen = []
    engine.Stages(str(tmp_path), False).run(1, "a", "A", {}, [str(out)], lambda: seen.append(os.path.exists(out)))
    assert seen == [False]


def test_captions_name_every_phrase():
    rng = np.random.default_rng(0)
    phrases = ["Roots", "Cracks, breaks, and collapses", "Drilled connection"]
    for _ in range(20):
        text = demo_pretrain.caption(rng, phrases)
        assert all(p.lower() in text for p in phrases)
    assert "defect" in demo_pretrain.caption(rng, []) or "sewer" in demo_pretrain.caption(rng, [])
    assert demo_pretrain.class_prompts(["Roots"]) == ["a photo of a sewer pipe with roots."]


def test_contrastive_loss_matches_torch_clip_loss():
    import torch

    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=(6, 8)).astype(np.float32), rng.normal(size=(6, 8)).astype(np.float32)
    scale = np.float32(np.log(10.0))
    groups = np.arange(6)  # all captions distinct: the plain CLIP loss
    ours = float(demo_pretrain._contrastive_loss(img, txt, groups, scale))
    ti, tt = torch.nn.functional.normalize(torch.tensor(img)), torch.nn.functional.normalize(torch.tensor(txt))
    logits = 10.0 * ti @ tt.T
    target = torch.arange(6)
    ref = 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))
    assert ours == pytest.approx(float(ref), rel=1e-5)
    # two frames with one label set: each row's target is split evenly between them
    groups = np.array([0, 0, 1, 2, 3, 4])
    ours = float(demo_pretrain._contrastive_loss(img, txt, groups, scale))
    soft = torch.eye(6)
    soft[0, 1] = soft[1, 0] = 1
    soft = soft / soft.sum(1, keepdim=True)
    ref = 0.5 * (torch.nn.functional.cross_entropy(logits, soft) + torch.nn.functional.cross_entropy(logits.T, soft))
    assert ours == pytest.approx(float(ref), rel=1e-5)


def test_pr_curve_gives_sklearn_average_precision():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(2)
    labels = rng.uniform(size=(50, 4)) < 0.2
    scores = rng.normal(size=(50, 4)) + labels
    precision, recall = pr.pr_curve(scores, labels)
    ap = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    assert ap == pytest.approx(average_precision_score(labels.ravel(), scores.ravel()), rel=1e-9)


def test_pretrain_equals_the_plain_nnx_loop_bit_for_bit():
    """The pre-training's pure jax.jit step gives exactly the parameters of the plain nnx.jit /
    nnx.Optimizer loop (bit for bit: the demo's figures must not move)."""
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from sfr_jax.models.clip import CLIP
    from sfr_jax.models.rs import RSConfig
    from sfr_jax.models.store import flat_params

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, 16, 16, 3)).astype(np.uint8)
    ids = np.zeros((24, 8), np.int32)
    ids[:, 0], ids[:, 1:4], ids[:, 4] = 49406, rng.integers(100, 3000, (24, 3)), 49407
    groups = rng.integers(0, 4, 24)
    config = demo_pretrain.tiny_config(16, patch_size=8, width=32, layers=1, text_width=32, text_layers=1,
                                       projection_dim=16)
    steps, lr = 6, 2e-3
    ours, _ = demo_pretrain.pretrain(images, ids, groups, config, steps=steps, batch_size=8, lr=lr, seed=1,
                                     jitter=True)
    # the plain loop, written out: same batches (the same numpy stream), every parameter in the optimiser
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(params=1, dropout=2))
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 10), steps, lr * 0.05)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.05))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, pixels, ids, grp):
        loss, grads = nnx.value_and_grad(lambda m: demo_pretrain._contrastive_loss(
            m.encode_image(pixels)[:, 0], m.encode_text(ids), grp, m.logit_scale[...]))(model)
        optimizer.update(model, grads)
        return loss

    stream = np.random.default_rng(1)
    order, cursor = stream.permutation(24), 0
    for _ in range(steps):
        if cursor + 8 > 24:
            order, cursor = stream.permutation(24), 0
        idx = np.sort(order[cursor:cursor + 8])
        cursor += 8
        flip = stream.uniform(size=8) < 0.5
        batch = demo_pretrain.photometric_jitter(stream, np.where(flip[:, None, None, None], images[idx][:, :, ::-1],
                                                                  images[idx]))
        step(model, optimizer, jnp.asarray(demo_pretrain.normalise(batch)), jnp.asarray(ids[idx]),
             jnp.asarray(groups[idx]))
    theirs, mine = flat_params(model), flat_params(ours)
    assert sorted(mine) == sorted(theirs)
    for name in theirs:
        np.testing.assert_array_equal(np.asarray(mine[name]), np.asarray(theirs[name]), err_msg=name)
