"""`train --dry-run [--topology]`: TPU slices named and described, the abstract model build, compiles for a
slice that is not here (libtpu), memory against hand-counted weights, the batch search, the roofline."""
import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from sfr_jax import chips, topology
from sfr_jax import config as config_lib
from sfr_jax.config import base_config
from sfr_jax.errors import ConfigError
from sfr_jax.fileio import write_json
from sfr_jax.infer import model as model_lib
from sfr_jax.models.clip import CLIPConfig, TextConfig, VisionConfig
from sfr_jax.text.tokenizer import ClipTokenizer
from sfr_jax.train import aot, cli, fit
from train_fixtures import REPO, TINY_L14, make_tiny_clip_dir

needs_libtpu = pytest.mark.skipif(not topology.libtpu_available(),
                                  reason="libtpu is not installed (pip install -e .[tpu-aot]): no TPU slice to "
                                         "compile for")
GIB = 2 ** 30


def _config(clip_dir, **overrides):
    """A small run config on `clip_dir` with 16-image batches; overrides are dotted keys."""
    c = base_config()
    c.clip_dir, c.data.image_size = clip_dir, 28
    c.model.bottleneck_dim, c.model.head_hidden, c.model.gcn_hidden = 8, 16, 8
    c.train.global_batch = c.eval.global_batch = 16
    c.loss.group_size = 0
    return config_lib.set_values(c, overrides)


def _args(clip_dir, *extra):
    return ["--config", os.path.join(REPO, "configs", "sewerml.py"), f"--config.clip_dir={clip_dir}",
            "--config.data.image_size=28", "--config.model.bottleneck_dim=8", "--config.model.head_hidden=16",
            "--config.model.gcn_hidden=8", "--config.train.global_batch=16", "--config.eval.global_batch=16",
            "--config.loss.group_size=0", "--dry-run", *extra]


@pytest.fixture(scope="module")
def l14_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "l14", cfg=TINY_L14)


# A text tower too wide for one v5e (its fp32 weights alone exceed 16 GiB), on a tiny vision tower. Only its
# config and tokenizer are written: a dry run reads no weights.
WIDE = CLIPConfig(VisionConfig(32, 64, 1, 2, 28, 14), TextConfig(24576, 24576, 1, 2), 16)


def wide_text_tower_bytes(c: TextConfig, projection: int) -> float:
    """fp32 bytes of a CLIP text tower counted by hand: embeddings, per block 4 projections with biases, 2
    LayerNorms and the MLP, the final LayerNorm and the projection."""
    w, m = c.hidden_size, c.intermediate_size
    block = 4 * (w * w + w) + 2 * 2 * w + (w * m + m) + (m * w + w)
    return 4.0 * (c.vocab_size * w + c.max_position_embeddings * w + c.num_hidden_layers * block + 2 * w
                  + w * projection)


@pytest.fixture(scope="module")
def wide_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "wide"
    os.makedirs(path)
    write_json(os.path.join(path, "clip_config.json"), WIDE.to_hf_dict())
    ClipTokenizer.default().save(str(path))
    return str(path)


def test_accelerator_types_map_to_libtpu_names():
    """Cloud TPU's accelerator types (v5e/v6e count chips, v4/v5p TensorCores, 2 per chip) as the slice
    shapes of the Cloud TPU docs."""
    for name, want in [("v5e-8", "v5e:2x4"), ("v5litepod-16", "v5e:4x4"), ("v5e-256", "v5e:16x16"),
                       ("v6e-64", "v6e:8x8"), ("v5p-128", "v5p:4x4x4"), ("v4-8", "v4:2x2x1"),
                       ("V5E:2x2", "v5e:2x2"), ("v4:2x2x1", "v4:2x2x1")]:
        assert topology.libtpu_name(name) == want
    for bad in ("v5e-7", "h100", "v5e:2", "v4-6"):
        with pytest.raises(ConfigError, match="not a TPU topology"):
            topology.libtpu_name(bad)


@needs_libtpu
def test_libtpu_describes_the_slices_and_the_catalogue_knows_their_chips():
    """Chip counts of the Cloud TPU docs (v5p-128 is 64 chips, v4-8 is 4), and every generation's devices
    are found in the chip catalogue by their device_kind."""
    for name, count, chip in [("v5e:2x2", 4, "v5e"), ("v5e-256", 256, "v5e"), ("v4-8", 4, "v4"),
                              ("v5p-128", 64, "v5p"), ("v6e-64", 64, "v6e")]:
        devices = topology.devices(name)
        assert len(devices) == count and {d.platform for d in devices} == {"tpu"}
        assert chips.of_device(devices[0]).name == chip
    with pytest.raises(ConfigError, match="libtpu cannot describe"):
        topology.devices("v5e:3x7")


def test_topology_without_libtpu_is_a_user_error(monkeypatch, l14_dir, capsys):
    monkeypatch.setattr(topology, "libtpu_available", lambda: False)
    assert cli.train_main(_args(l14_dir, "--topology", "v5e:2x2")) == 2
    err = capsys.readouterr().err
    assert "needs libtpu" in err and "pip install -e .[tpu-aot]" in err and "Traceback" not in err


def test_sfr_jax_never_imports_libtpu_itself():
    """Importing every verb (and the dry run) loads no libtpu; only a --topology does."""
    code = "import sys, sfr_jax.main, sfr_jax.train.dryrun; print('libtpu' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=REPO), timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


def test_topology_needs_dry_run_and_presets_are_checked(l14_dir, capsys):
    args = [a for a in _args(l14_dir) if a != "--dry-run"]
    assert cli.train_main(args + ["--workdir", "w", "--topology", "v5e:2x2"]) == 2
    assert "--topology only goes with --dry-run" in capsys.readouterr().err
    assert cli.train_main(_args(l14_dir, "--config.model.clip_preset=vit_h14")) == 2
    err = capsys.readouterr().err
    assert "model.clip_preset='vit_h14'" in err and "vit_l14_336" in err


def test_preset_model_is_abstract_and_has_hf_parameter_count(tmp_path):
    """Without a converted CLIP the dry run builds model.clip_preset abstractly: no leaf is an array, and its
    frozen CLIP has exactly the parameters of Hugging Face's CLIPModel of ViT-L/14 at 336 px."""
    import torch
    import transformers

    config = _config(str(tmp_path / "none"), **{"model.clip_preset": "vit_l14_336", "data.image_size": 336})
    parts = model_lib.abstract_parts(model_lib.ModelSpec.from_config(config))
    leaves = jax.tree.leaves((parts.trainable, parts.frozen))
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
    frozen_clip = sum(int(np.prod(v.get_value().shape)) for path, v in nnx.to_flat_state(parts.frozen)
                      if isinstance(v, nnx.Param) and path[0] == "clip")
    with torch.device("meta"):
        hf = transformers.CLIPModel(transformers.CLIPConfig.from_dict(CLIPConfig.vit_l14_336().to_hf_dict()))
    assert frozen_clip == sum(p.numel() for p in hf.parameters())
    _, source = model_lib.ModelSpec.from_config(config).clip_architecture()
    assert source.startswith("preset vit_l14_336") and "holds none" in source
    config.model.clip_preset = ""
    with pytest.raises(ConfigError, match="clip_dir=.* holds no converted CLIP and model.clip_preset is ''"):
        model_lib.abstract_parts(model_lib.ModelSpec.from_config(config))


def _fake_compile(memory, limit, available):
    """compile_at(per_device_batch) of a planted memory curve: fits iff memory(b) <= available."""
    calls = []

    def compile_at(b):
        calls.append(b)
        m = memory(b)
        if m <= available:
            return aot.Compiled("train", 4 * b, b, True, argument=m, output=0.0, temp=0.0, alias=0.0, limit=limit)
        return aot.Compiled("train", 4 * b, b, False, required=m, available=available, limit=limit)

    return compile_at, calls


@pytest.mark.parametrize("name, memory", [
    ("affine", lambda b: 2.0 * GIB + 0.31 * GIB * b),
    ("layout step at 32 and curvature", lambda b: 1.5 * GIB + 0.2 * GIB * b + 0.002 * GIB * b * b
                                                 + (GIB if b >= 32 else 0.0)),
    ("state too large", lambda b: 16.0 * GIB + b),
    ("all but the request fit", lambda b: 0.1 * GIB * b + (100 * GIB if b >= 112 else 0.0)),
])
def test_batch_search_finds_the_brute_force_answer_in_few_compiles(name, memory):
    limit, available = 16.0 * GIB, 15.75 * GIB
    request = 112
    compile_at, calls = _fake_compile(memory, limit, available)
    want = max([b for b in range(1, request) if memory(b) <= available], default=0)
    found = fit.largest_batch(compile_at, compile_at(request), max_compiles=16)
    assert found.certain and found.largest == want, (name, calls)
    assert found.compiles <= 2 * math.ceil(math.log2(request)), (name, calls)
    if want:
        assert found.fitting.per_device_batch == want and found.fitting.fits
    capped = fit.largest_batch(compile_at, compile_at(request), max_compiles=1)
    assert capped.compiles == 1 and capped.largest <= want
    by_8 = fit.largest_batch(compile_at, compile_at(request), max_compiles=16, quantum=8)
    assert by_8.certain and by_8.largest == want // 8 * 8 and by_8.compiles <= 2 * math.ceil(math.log2(request / 8))
    assert all(b % 8 == 0 for b in calls[-by_8.compiles:])


def test_roofline_is_the_larger_of_compute_and_hbm_time():
    v5e = chips.by_name("v5e")
    r = chips.roofline(v5e, 197e12 * 0.5, 819e9 * 0.25)  # 0.5 s of peak compute, 0.25 s of HBM traffic
    assert math.isclose(r.seconds, 0.5) and r.bound == "compute"
    r = chips.roofline(v5e, 197e12 * 0.1, 819e9 * 0.25)
    assert math.isclose(r.seconds, 0.25) and r.bound == "HBM bandwidth"
    assert math.isclose(chips.roofline(v5e, 197e12).seconds, 1.0)  # no byte count: compute alone
    assert chips.hosts(v5e, 4) == 1 and chips.hosts(v5e, 256) == 32 and chips.hosts(chips.by_name("v5p"), 64) == 16


def _number(pattern, text):
    return float(re.search(pattern, text).group(1))


@needs_libtpu
def test_dry_run_screen_for_a_v5e_slice(l14_dir, capsys):
    """The real train and eval steps of a miniature L/14 compiled for 4 v5e chips on this CPU: per-device
    batches, memory against 16 GiB, and a roofline whose numbers follow from the printed FLOPs by hand."""
    assert cli.train_main(_args(l14_dir, "--topology", "v5e:2x2", "--config.model.dtype=bfloat16")) == 0
    out = capsys.readouterr().out
    assert "for topology v5e:2x2: 4 x TPU v5 lite (v5e: 16 GiB HBM, 197 TFLOP/s bf16, 819 GB/s)" in out
    assert "layers unrolled" in out  # what scan_layers='auto' does on a TPU, not on this CPU
    assert out.count("per-device batch: 4 (global 16, 4 devices)") == 2  # train and eval
    assert out.count("of 16.000 GiB") == 2 and out.rstrip().endswith("verdict: fits")
    train = out.split("eval step")[0]
    flops = _number(r"XLA cost-analysis FLOPs per step: \S+ \((\S+) per device", train)  # layers unrolled
    compute_ms = _number(r"compute (\S+) ms at 197 TFLOP/s bf16 peak \(XLA FLOPs\)", train)
    assert math.isclose(compute_ms, flops / 197e12 * 1e3, rel_tol=0.006)
    ms = _number(r"ESTIMATE \(not a measurement\): (\S+) ms/step", train)
    hbm_ms = _number(r"HBM traffic (\S+) ms", train)
    assert math.isclose(ms, max(compute_ms, hbm_ms), rel_tol=0.006)
    assert math.isclose(_number(r"ms/step, (\d+) images/s", train), 16 / (ms / 1e3), rel_tol=0.006)


@needs_libtpu
def test_a_step_that_does_not_fit_says_by_how_much_and_exits_3(wide_dir, capsys):
    """The wide text tower replicated on every v5e chip: the compiler refuses it, the screen gives its need
    (at least the hand-counted fp32 weights) and the gap to what the chip offers; no batch can help."""
    assert cli.train_main(_args(wide_dir, "--topology", "v5e:2x2")) == 3
    out = capsys.readouterr().out
    need = _number(r"DOES NOT FIT: the compiler needs (\S+) GiB", out)
    more = _number(r"GiB, (\S+) GiB more than the", out)
    offered = _number(r"more than the (\S+) GiB it can use of 16.000 GiB", out)
    weights = wide_text_tower_bytes(WIDE.text, WIDE.projection_dim) / GIB
    assert weights <= need <= weights + 1.0 and 15 < offered < 16 and math.isclose(more, need - offered, abs_tol=2e-3)
    assert "no train batch fits: the state alone takes" in out and "mesh.model > 1" in out
    assert out.rstrip().endswith("DOES NOT FIT (exit code 3)")


@needs_libtpu
def test_model_axis_shards_the_wide_tower_until_it_fits(wide_dir):
    """FSDP over 'model': with mesh.model=2 each v5e chip holds half the weights (hand count) and the step
    that did not fit replicated compiles."""
    target = aot.target("v5e:2x2")
    plan = aot.plan(_config(wide_dir, **{"mesh.model": 2}), target)
    c = aot.compile_train(plan, 16)
    half = wide_text_tower_bytes(WIDE.text, WIDE.projection_dim) / 2
    assert c.fits and half <= c.argument <= half + 0.25 * GIB, (c.argument / GIB, half / GIB)
    assert c.total < 15.75 * GIB and c.per_device_batch == 4


@needs_libtpu
def test_commands_on_a_machine_without_tpu_print_no_libtpu_warnings(tmp_path):
    """libtpu installed, no TPU chips here: a command that starts JAX prints none of libtpu's start-up
    warnings (JAX is limited to the CPU), and --topology still compiles (the tests above)."""
    if os.path.exists("/dev/accel0"):
        pytest.skip("this machine has TPU chips")
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    script = ("import sys; from sfr_jax import main; main.topology.leave_out_absent_tpu(); import jax; "
              "print(jax.devices()[0].platform, jax.device_count())")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "cpu" and "TPU" not in proc.stderr and "libtpu" not in proc.stderr, proc.stderr
