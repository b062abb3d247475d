"""Training configuration: the reference recipe as an ml_collections ConfigDict, and its command-line loading.

`base_config()` holds every hyper-parameter of SPEC §6-§7 with the reference's default; the files in
`configs/` start from it. `parse(argv)` reads `--config FILE[:variants] --config.a.b=value` with a locked
config, so a misspelt key is an error instead of a silently ignored value.
"""
from __future__ import annotations

import json
import os

import ml_collections
from absl import flags
from ml_collections import config_flags


class ConfigError(ValueError):
    """A config file, variant or override the user got wrong."""


def base_config() -> ml_collections.ConfigDict:
    """Reference SFR-Net recipe for Sewer-ML (SPEC §6): ViT-B/16 at 224, global batch 896, 10 epochs."""
    c = ml_collections.ConfigDict()
    c.name = "sewerml"
    c.seed = 42

    # Inputs produced by other verbs: `sfr-jax convert-clip` and `sfr-jax prepare`.
    c.clip_dir = "checkpoints/clip-b16"
    c.data = ml_collections.ConfigDict()
    c.data.dir = "data/sewerml"  # prepared TFRecords, one sub-folder per split
    c.data.train_split = "train"
    c.data.eval_split = "test"
    c.data.class_set = "sewerml"  # a built-in class set name or a .yaml/.csv file
    c.data.descriptions = ""  # optional text file with one description per class ('' = built-in)
    c.data.image_size = 224
    c.data.mean = (0.5, 0.5, 0.5)  # Sewer-ML / WZ-Pipe normalisation, not CLIP's
    c.data.std = (0.5, 0.5, 0.5)
    c.data.augment = True
    c.data.shuffle_buffer = 16384
    c.data.device_prefetch = 2  # batches sent to the devices ahead of the running step (copies overlap it)
    # Read the input as this many processes would (0: the real process count). A 1-process run with
    # input_processes=N consumes exactly the global batches of an N-process run (to compare the two).
    c.data.input_processes = 0

    c.model = ml_collections.ConfigDict()
    c.model.rs = True  # RS adapters in every block of both towers (ablation switch)
    c.model.bottleneck_dim = 128
    c.model.rs_dropout = 0.1
    c.model.rs_layers = ""  # '' = all layers, else comma-separated layer indices, e.g. '10,11'
    c.model.use_local = True  # MEF local evidence branch (ablation switch)
    c.model.use_gr = True  # GR graph refining (ablation switch)
    c.model.head_hidden = 1024
    c.model.head_dropout = 0.1
    c.model.gcn_hidden = 64
    c.model.gcn_dropout = 0.5
    c.model.adjacency_threshold = 0.85
    c.model.recompute_adjacency_at_eval = False  # True mimics the reference's evaluation of a saved model
    c.model.dtype = "float32"  # compute dtype: float32 or bfloat16 (master weights stay float32)
    # Speed/memory only, never numerics beyond fp32 rounding (benchmarks/README.md has the measurements):
    c.model.attention_impl = "auto"  # auto (cuDNN for bf16 on NVIDIA, else einsum) | einsum | xla | cudnn
    c.model.remat = ""  # '' | 'block' | 'dots': recompute activations in the backward pass (large batches)
    c.model.scan_layers = "auto"  # auto (scan on CPU in training) | on | off

    c.loss = ml_collections.ConfigDict()
    c.loss.temperature = 0.1
    c.loss.margin = 0.2
    c.loss.gamma = 10.0
    # The reference computes the loss per GPU (224 images) and DDP averages the gradients: the SCL softmax
    # runs over one group. The global batch is split into groups of this size (0: one group, the batch).
    c.loss.group_size = 224

    c.optim = ml_collections.ConfigDict()
    c.optim.clip_lr = 5e-6  # RS adapters: BASE_LR 5e-5 x lr_mult 0.1
    c.optim.head_lr = 1e-3  # MEF head + GCN: BASE_LR_SGD
    c.optim.weight_decay = 1e-4  # on every trainable tensor
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.grad_clip = 1.0  # global norm over all trainable tensors; <= 0 disables
    # The reference clips its AMP-scaled gradients before unscaling (clip_grad_norm_ without unscale_), so
    # the effective limit is grad_clip / loss_scale (2**16, doubled every 2000 steps). False: plain clipping.
    c.optim.clip_scaled_like_reference = True

    c.schedule = ml_collections.ConfigDict()
    c.schedule.kind = "epoch"  # 'epoch': reference (one value per epoch e = 1, 2, ...); 'step': smooth per step
    c.schedule.warmup_epochs = 3
    c.schedule.warmup_init = 5e-7  # 0.01 x BASE_LR, shared by both groups
    c.schedule.min_lr = 1e-7  # 0.002 x BASE_LR, shared by both groups
    c.schedule.period_epochs = 60  # SCHEDULER_MAX_EPOCHS

    c.train = ml_collections.ConfigDict()
    c.train.global_batch = 896
    c.train.epochs = 10
    c.train.max_steps = -1  # -1: epochs x steps per epoch; else stop after this many steps in all
    c.train.log_every = 50
    c.train.eval_every_epochs = 1
    c.train.checkpoint_every_epochs = 1  # at these epoch ends (and always at the last step / on preemption)
    c.train.checkpoint_every_steps = 0  # additionally every N steps (0: never)
    c.train.keep_checkpoints = 3
    c.train.best_metric = "zsl/mAP"  # '' disables keeping the best checkpoint
    c.train.stop_at_step = -1  # testing aid: behave as if preempted (SIGTERM) right after this step

    c.eval = ml_collections.ConfigDict()
    c.eval.global_batch = 896
    c.eval.topk_zsl = (1, 3)
    c.eval.topk_gzsl = (1, 3)
    c.eval.max_batches = -1  # -1: the whole split (tables are only comparable then); else a quick look

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # -1: every device not used by the model axis
    c.mesh.model = 1  # >1 shards the larger parameters over a 'model' axis

    c.distributed = ml_collections.ConfigDict()
    c.distributed.coordinator = ""  # host:port; '' = auto-detect (TPU pod, SLURM) or single process
    c.distributed.num_processes = 1
    c.distributed.process_id = 0
    c.distributed.cpu_collectives = "gloo"  # CPU multi-process collectives
    return c


def apply_variants(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Apply the comma-separated `:variants` of a config file name, e.g. `configs/sewerml.py:runlocal,bf16`."""
    for variant in [v.strip() for v in (arg or "").split(",") if v.strip()]:
        if variant == "runlocal":
            # A few steps at a small batch: checks the whole pipeline on a laptop.
            config.train.global_batch = 8
            config.eval.global_batch = 8
            config.train.max_steps = 4
            config.train.log_every = 1
            config.eval.max_batches = 8
            config.data.shuffle_buffer = 64
            config.loss.group_size = 0
        elif variant == "bf16":
            config.model.dtype = "bfloat16"
        elif variant == "step_schedule":
            config.schedule.kind = "step"
        else:
            raise ConfigError(f"unknown config variant {variant!r} (known: runlocal, bf16, step_schedule)")
    return config


def validate(config: ml_collections.ConfigDict) -> None:
    """Reject values that cannot work, naming the key."""
    checks = [
        ("schedule.kind", config.schedule.kind in ("epoch", "step"), "must be 'epoch' or 'step'"),
        ("model.dtype", config.model.dtype in ("float32", "bfloat16"), "must be 'float32' or 'bfloat16'"),
        ("model.attention_impl", config.model.attention_impl in ("auto", "einsum", "xla", "cudnn"),
         "must be one of auto, einsum, xla, cudnn"),
        ("model.remat", config.model.remat in ("", "block", "dots"), "must be '', 'block' or 'dots'"),
        ("model.scan_layers", config.model.scan_layers in ("auto", "on", "off"), "must be auto, on or off"),
        ("train.global_batch", config.train.global_batch > 0, "must be positive"),
        ("eval.global_batch", config.eval.global_batch > 0, "must be positive"),
        ("train.epochs", config.train.epochs > 0, "must be positive"),
        ("train.log_every", config.train.log_every > 0, "must be positive"),
        ("train.eval_every_epochs", config.train.eval_every_epochs > 0, "must be positive"),
        ("train.checkpoint_every_epochs", config.train.checkpoint_every_epochs > 0, "must be positive"),
        ("train.keep_checkpoints", config.train.keep_checkpoints > 0, "must be positive"),
        ("schedule.period_epochs", config.schedule.period_epochs > 0, "must be positive"),
        ("mesh.model", config.mesh.model >= 1, "must be >= 1"),
        ("loss.group_size", config.loss.group_size == 0 or (config.loss.group_size > 0 and
                                                           config.train.global_batch % config.loss.group_size == 0),
         f"must be 0 or divide train.global_batch={config.train.global_batch}"),
        ("data.mean", len(config.data.mean) == 3 and len(config.data.std) == 3, "mean/std need 3 values"),
        ("data.std", all(s > 0 for s in config.data.std), "must be positive (images are divided by it)"),
        ("data.device_prefetch", config.data.device_prefetch >= 0, "must be >= 0"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise ValueError(f"config value {key}={_get(config, key)!r} {why}")
    if config.train.best_metric and config.train.best_metric.split("/")[0] not in ("zsl", "gzsl"):
        raise ValueError(f"config value train.best_metric={config.train.best_metric!r}: use 'zsl/<metric>' or "
                         "'gzsl/<metric>', e.g. 'zsl/mAP'")


def _get(config, dotted):
    for part in dotted.split("."):
        config = config[part]
    return config


def rs_layers(config) -> tuple[int, ...] | None:
    """`model.rs_layers` as a tuple of layer indices, or None for all layers."""
    text = str(config.model.rs_layers).strip()
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"config value model.rs_layers={text!r}: expected comma-separated integers") from None


def to_json(config: ml_collections.ConfigDict) -> str:
    return config.to_json_best_effort(indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
    """A config saved with `to_json`, with base_config's keys as the schema (tuples restored)."""
    saved = json.loads(text)
    config = base_config()
    _merge(config, saved, "")
    return config


def _merge(config, values, prefix):
    for key, value in values.items():
        if key not in config:
            raise KeyError(f"saved config has unknown key {prefix}{key!r}")
        if isinstance(config[key], ml_collections.ConfigDict):
            _merge(config[key], value, f"{prefix}{key}.")
        else:
            if isinstance(config[key], tuple):
                value = tuple(value)
            with config.ignore_type():
                config[key] = value


def parse(argv: list[str], extra: callable | None = None) -> tuple[ml_collections.ConfigDict, flags.FlagValues]:
    """Parse `argv` (no program name) with a fresh flag registry: `--config FILE[:arg]` plus overrides.

    `extra(flag_values)` may define more flags (workdir, dry-run...). Returns the locked, validated config.
    """
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "ml_collections config file[:variants]", flag_values=fv,
                                    lock_config=True, sys_argv=["sfr-jax"] + list(argv))
    if extra:
        extra(fv)
    try:
        fv(["sfr-jax"] + list(argv))
        config = fv.config
        if config is not None:
            config.name  # a config file that failed to load raises here
    except (flags.Error, KeyError, AttributeError, TypeError, ValueError, OSError) as error:
        message = str(error).replace("\\n", " ").replace("\\'", "'").strip("'\"")
        raise ConfigError(f"bad command line or config override: {message}") from None
    if config is None:
        raise ConfigError("--config FILE is required (e.g. --config configs/sewerml.py)")
    try:
        validate(config)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return config, fv


def resolve_paths(config, base_dir: str) -> None:
    """Make relative data/CLIP paths absolute (against base_dir) so that a saved config works from anywhere."""
    with config.unlocked():
        for key in ("clip_dir",):
            if config[key] and not os.path.isabs(config[key]):
                config[key] = os.path.abspath(os.path.join(base_dir, config[key]))
        for key in ("dir", "descriptions"):
            value = config.data[key]
            if value and not os.path.isabs(value) and not (key == "descriptions" and not value):
                config.data[key] = os.path.abspath(os.path.join(base_dir, value))
        cs = config.data.class_set
        if cs.endswith((".yaml", ".yml", ".csv")) and not os.path.isabs(cs):
            config.data.class_set = os.path.abspath(os.path.join(base_dir, cs))
