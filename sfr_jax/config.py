"""The run configuration: the reference recipe as an ml_collections ConfigDict, and its command-line loading.

`base_config()` holds every hyper-parameter of SPEC §6-§7 with the reference's default; the files in
`configs/` start from it. `parse(argv)` reads `--config FILE[:variants] --config.a.b=value` with a locked
config (ml_collections' config_flags), so a misspelt key is an error instead of a silently ignored value.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback

import ml_collections
from absl import flags
from ml_collections import config_flags

from sfr_jax.errors import ConfigError


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
    # The CLIP's shape when clip_dir holds no converted CLIP: `train --dry-run` then compiles this preset
    # (vit_b16, vit_b32, vit_l14, vit_l14_336; '' = none) with no weights. Training always needs clip_dir.
    c.model.clip_preset = "vit_b16"
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
    c.train.init_from = ""  # fine-tuning: start from a trained workdir (newest step) or an export (trainable parts)

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


def one_of(key: str, value, allowed) -> None:
    """A ConfigError naming `key` when `value` is not among `allowed` (the allowed values live with their user and are handed in)."""
    if value not in allowed:
        names = [repr(a) for a in allowed]
        choice = " or ".join(names) if len(names) <= 2 else "one of " + ", ".join(names)
        raise ConfigError(f"config value {key}={value!r} must be {choice}")


def _positive(x) -> bool:
    return x > 0


def _fraction(x) -> bool:  # a dropout rate or an Adam beta
    return 0 <= x < 1


def _rules(c) -> list:
    """(key, ok, why) of every value whose range can be checked here; the order is the error's priority.
    Choices among names (model.dtype, schedule.kind, ...) are checked by the typed config of their user
    (sfr_jax.train.configs.typed), which reads the allowed names from where they are used."""
    return [
        ("model.bottleneck_dim", _positive(c.model.bottleneck_dim), "must be positive"),
        ("model.head_hidden", _positive(c.model.head_hidden), "must be positive"),
        ("model.gcn_hidden", _positive(c.model.gcn_hidden), "must be positive"),
        ("model.rs_dropout", _fraction(c.model.rs_dropout), "must be in [0, 1)"),
        ("model.head_dropout", _fraction(c.model.head_dropout), "must be in [0, 1)"),
        ("model.gcn_dropout", _fraction(c.model.gcn_dropout), "must be in [0, 1)"),
        ("model.adjacency_threshold", -1 <= c.model.adjacency_threshold <= 1,
         "must be a cosine in [-1, 1]"),
        ("optim.clip_lr", _positive(c.optim.clip_lr), "must be positive (a learning rate)"),
        ("optim.head_lr", _positive(c.optim.head_lr), "must be positive (a learning rate)"),
        ("optim.weight_decay", c.optim.weight_decay >= 0, "must be >= 0"),
        ("optim.b1", _fraction(c.optim.b1), "must be in [0, 1)"),
        ("optim.b2", _fraction(c.optim.b2), "must be in [0, 1)"),
        ("optim.eps", _positive(c.optim.eps), "must be positive"),
        ("schedule.warmup_epochs", c.schedule.warmup_epochs >= 0, "must be >= 0"),
        ("schedule.warmup_init", c.schedule.warmup_init >= 0, "must be >= 0 (a learning rate)"),
        ("schedule.min_lr", c.schedule.min_lr >= 0, "must be >= 0 (a learning rate)"),
        ("schedule.period_epochs", _positive(c.schedule.period_epochs), "must be positive"),
        ("loss.temperature", _positive(c.loss.temperature), "must be positive (logits are divided by it)"),
        ("loss.margin", c.loss.margin >= 0, "must be >= 0"),
        ("loss.gamma", c.loss.gamma >= 0, "must be >= 0"),
        ("train.global_batch", _positive(c.train.global_batch), "must be positive"),
        ("eval.global_batch", _positive(c.eval.global_batch), "must be positive"),
        ("train.epochs", _positive(c.train.epochs), "must be positive"),
        ("train.max_steps", c.train.max_steps == -1 or c.train.max_steps > 0, "must be -1 (all epochs) or positive"),
        ("train.log_every", _positive(c.train.log_every), "must be positive"),
        ("train.eval_every_epochs", _positive(c.train.eval_every_epochs), "must be positive"),
        ("train.checkpoint_every_epochs", _positive(c.train.checkpoint_every_epochs), "must be positive"),
        ("train.checkpoint_every_steps", c.train.checkpoint_every_steps >= 0, "must be >= 0 (0: never)"),
        ("train.keep_checkpoints", _positive(c.train.keep_checkpoints), "must be positive"),
        ("eval.max_batches", c.eval.max_batches == -1 or c.eval.max_batches > 0, "must be -1 (all) or positive"),
        ("eval.topk_zsl", len(c.eval.topk_zsl) > 0 and all(int(k) >= 1 for k in c.eval.topk_zsl),
         "must be a tuple of k >= 1"),
        ("eval.topk_gzsl", len(c.eval.topk_gzsl) > 0 and all(int(k) >= 1 for k in c.eval.topk_gzsl),
         "must be a tuple of k >= 1"),
        ("mesh.model", c.mesh.model >= 1, "must be >= 1"),
        ("mesh.data", c.mesh.data == -1 or c.mesh.data >= 1, "must be -1 (all devices) or >= 1"),
        ("loss.group_size", c.loss.group_size == 0 or (c.loss.group_size > 0 and
                                                      c.train.global_batch % c.loss.group_size == 0),
         f"must be 0 or divide train.global_batch={c.train.global_batch}"),
        ("data.image_size", _positive(c.data.image_size), "must be positive"),
        ("data.mean", len(c.data.mean) == 3 and len(c.data.std) == 3, "mean/std need 3 values"),
        ("data.std", all(s > 0 for s in c.data.std), "must be positive (images are divided by it)"),
        ("data.shuffle_buffer", c.data.shuffle_buffer >= 0, "must be >= 0"),
        ("data.device_prefetch", c.data.device_prefetch >= 0, "must be >= 0"),
        ("data.input_processes", c.data.input_processes >= 0, "must be >= 0 (0: the real process count)"),
        ("data.class_set", bool(str(c.data.class_set).strip()), "must name a built-in class set or a file"),
    ]


def validate(config: ml_collections.ConfigDict) -> None:
    """Reject values out of range, naming the key (see _rules)."""
    for key, value in flatten(config).items():  # inf passes every `> 0` rule below, nan fails them all
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"config value {key}={value!r} must be a finite number")
    for key, ok, why in _rules(config):
        if not ok:
            raise ConfigError(f"config value {key}={_get(config, key)!r} {why}")
    if config.train.best_metric and config.train.best_metric.split("/")[0] not in ("zsl", "gzsl"):
        raise ConfigError(f"config value train.best_metric={config.train.best_metric!r}: use 'zsl/<metric>' or "
                          "'gzsl/<metric>', e.g. 'zsl/mAP'")


# Keys a resumed run may change: where things are, how often to log/evaluate/save, how long to train, how the
# devices compute. Any other change would make the resumed run a different run than the one checkpointed.
RESUMABLE = ("name", "clip_dir", "data.dir", "data.device_prefetch", "train.epochs", "train.max_steps",
             "train.log_every", "train.eval_every_epochs", "train.checkpoint_every_epochs",
             "train.checkpoint_every_steps", "train.keep_checkpoints", "train.stop_at_step", "eval.", "mesh.",
             "distributed.", "model.clip_preset", "model.attention_impl", "model.remat", "model.scan_layers")


def flatten(config) -> dict:
    """{dotted key: value} of every leaf of a config."""
    out = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = tuple(value) if isinstance(value, list) else value
    return out


def differences(old, new) -> list[tuple[str, object, object]]:
    """(key, old value, new value) of every leaf that differs between two configs."""
    a, b = flatten(old), flatten(new)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_resume(stored, new, workdir: str) -> None:
    """Refuse to resume `workdir` (trained with `stored`) with `new` when a non-resumable key differs."""
    changed = [(k, a, b) for k, a, b in differences(stored, new)
               if not any(k == r or (r.endswith(".") and k.startswith(r)) for r in RESUMABLE)]
    if changed:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed)
        raise ConfigError(f"{workdir} was trained with another config ({listed}); resuming may change only "
                          f"{', '.join(RESUMABLE)}. Use a new --workdir, or the stored values")


def set_values(config, values: dict):
    """Sets dotted keys (`{"train.global_batch": 16}`) in place and returns the config."""
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


def _get(config, dotted):
    for part in dotted.split("."):
        config = config[part]
    return config


def to_json(config: ml_collections.ConfigDict) -> str:
    return config.to_json_best_effort(indent=2, sort_keys=True)


def from_json(text: str, source: str = "saved config") -> ml_collections.ConfigDict:
    """A config saved with `to_json`, with base_config's keys as the schema (tuples restored); `source`
    names the file in errors."""
    try:
        saved = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{source}: expected a JSON object of config values")
    config = base_config()
    _merge(config, saved, "", source)
    return config


def _merge(config, values, prefix, source):
    for key, value in values.items():
        if key not in config:
            raise ConfigError(f"{source}: unknown config key {prefix}{key!r} (written by another sfr_jax version?)")
        if isinstance(config[key], ml_collections.ConfigDict):
            _merge(config[key], value, f"{prefix}{key}.", source)
        else:
            if isinstance(config[key], tuple):
                value = tuple(value)
            with config.ignore_type():
                config[key] = value


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the `--config FILE[:variants]` and `--config.a.b=value` words, the verb's other words) of argv."""
    config_args, rest, i = [], [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--config" or (word.startswith("--config.") and "=" not in word):
            config_args += argv[i:i + 2]  # the value follows as the next word
            i += 2
        else:
            (config_args if word.startswith(("--config=", "--config.")) else rest).append(word)
            i += 1
    return config_args, rest


def parse(config_args: list[str]) -> ml_collections.ConfigDict:
    """The locked, validated config of `--config FILE[:variants]` plus `--config.a.b=value` overrides
    (ml_collections' config_flags, on a fresh flag registry)."""
    path = config_file(config_args)
    if path and not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such config file")
    # config_flags loads the file as module 'config_config' with load_module(), which executes it into the
    # module left by an earlier parse in this process: a get_config deleted from the file would survive.
    sys.modules.pop("config_config", None)
    fv = flags.FlagValues()
    argv = ["sfr-jax"] + list(config_args)
    config_flags.DEFINE_config_file("config", None, "ml_collections config file[:variants]", flag_values=fv,
                                    lock_config=True, sys_argv=argv)
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)  # its warning of a get_config returning None would precede our one line
    try:
        fv(argv)
        config = fv.config
        if isinstance(config, ml_collections.ConfigDict):
            config.name  # a config file that failed to load raises here
    except Exception as error:  # noqa: BLE001 - the user's Python may raise anything; it is named below
        in_file = path and _config_file_error(error, path)
        if in_file:
            raise ConfigError(in_file) from None
        if not isinstance(error, (flags.Error, KeyError, AttributeError, TypeError, ValueError, OSError)):
            raise
        message = str(error).replace("\\n", " ").replace("\\'", "'").strip("'\"")
        if "Traceback" in message:  # a config file that raised: its own message is the last line
            message = message.strip().splitlines()[-1].split(": ", 1)[-1]
        raise ConfigError(f"bad command line or config override: {message}") from None
    finally:
        absl_log.setLevel(level)
    if path and not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, not an ml_collections "
                          "ConfigDict (a missing return?)")
    if config is None:
        raise ConfigError("--config FILE is required (e.g. --config configs/sewerml.py)")
    validate(config)
    return config


def use_process_flags(config, coordinator: str = "", num_processes: int = 0, process_id: int = -1, *,
                      fresh: bool = False) -> None:
    """The process layout of this command (--coordinator / --num-processes / --process-id; unset flags are
    '', 0 and -1 and keep the config's value). `fresh`: start from the base layout, for a stored run config
    whose layout was that of its training, not of this command."""
    with config.unlocked():
        if fresh:
            config.distributed = base_config().distributed
        if coordinator:
            config.distributed.coordinator = coordinator
        if num_processes:
            config.distributed.num_processes = num_processes
        if process_id >= 0:
            config.distributed.process_id = process_id


def config_file(config_args: list[str]) -> str | None:
    """The FILE of `--config FILE[:variants]` (or `--config=...`) among config words, if any."""
    for i, word in enumerate(config_args):
        value = (config_args[i + 1] if word == "--config" and i + 1 < len(config_args)
                 else word[len("--config="):] if word.startswith("--config=") else None)
        if value:
            return value.split(":", 1)[0]
    return None


def _config_file_error(error: BaseException, path: str) -> str | None:
    """One line naming the config FILE and line for an error of the user's Python in it (a syntax error, a
    NameError at import, a get_config that raises or is missing); None when the file is not to blame.
    config_flags wraps what get_config raised, so the chain of causes is searched."""
    where = os.path.realpath(path)
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        if isinstance(error, ConfigError):  # our own message (e.g. an unknown variant), already clear
            return None
        if isinstance(error, SyntaxError) and error.filename and os.path.realpath(error.filename) == where:
            return f"{path}, line {error.lineno}: syntax error in the config file ({error.msg})"
        lines = [f.lineno for f in traceback.extract_tb(error.__traceback__)
                 if os.path.realpath(f.filename) == where]
        if lines:
            return (f"{path}, line {lines[-1]}: the config file raised {type(error).__name__}: "
                    f"{' '.join(str(error).split())}")
        if isinstance(error, AttributeError) and "get_config" in str(error):
            return f"{path}: no get_config(arg=None) function; a config file defines one that returns a ConfigDict"
        error = error.__cause__ or error.__context__
    return None


def resolve_paths(config, base_dir: str) -> None:
    """Make relative data/CLIP paths absolute (against base_dir) so that a saved config works from anywhere."""
    with config.unlocked():
        for key in ("clip_dir",):
            if config[key] and not os.path.isabs(config[key]):
                config[key] = os.path.abspath(os.path.join(base_dir, config[key]))
        for key in ("dir", "descriptions"):
            value = config.data[key]
            if value and not os.path.isabs(value):
                config.data[key] = os.path.abspath(os.path.join(base_dir, value))
        cs = config.data.class_set
        if cs.endswith((".yaml", ".yml", ".csv")) and not os.path.isabs(cs):
            config.data.class_set = os.path.abspath(os.path.join(base_dir, cs))
