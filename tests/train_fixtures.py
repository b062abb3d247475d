"""Shared pieces of the training tests: a tiny converted CLIP on disk and tiny configs."""
import os

import numpy as np
from flax import nnx

from sfr_jax import config as config_lib
from sfr_jax.config import base_config
from sfr_jax.data import prepare, synthetic
from sfr_jax.models.clip import CLIP, CLIPConfig, TextConfig, VisionConfig
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.store import flat_params, save_clip
from sfr_jax.text.tokenizer import ClipTokenizer


# ViT-L/14's shape in miniature: patch 14, an odd token count (1 + 2x2 at 28 px), 2 blocks per tower, a
# text tower wider than the vision tower and a projection narrower than both.
TINY_L14 = CLIPConfig(VisionConfig(32, 64, 2, 2, 28, 14), TextConfig(48, 96, 2, 4), 24)


def make_tiny_clip_dir(path, seed=0, cfg=None):
    """A random tiny CLIP (default: width 32, 1 layer per tower, 32-px images) in our converted format."""
    if not os.path.exists(path):
        cfg = cfg or CLIPConfig(VisionConfig(32, 64, 1, 2, 32, 8), TextConfig(32, 64, 1, 2), 24)
        model = CLIP(cfg, RSConfig(enabled=False), rngs=nnx.Rngs(seed))
        save_clip(str(path), cfg, flat_params(model), ClipTokenizer.default())
    return str(path)


def tiny_config(clip_dir, data_dir="", **overrides):
    """demo.py's config shrunk further for tests; `overrides` are dotted keys."""
    c = base_config()
    c.name = "test"
    c.clip_dir = clip_dir
    c.data.dir = data_dir
    c.data.image_size = 32
    c.data.shuffle_buffer = 64
    c.model.bottleneck_dim = 8
    c.model.head_hidden = 16
    c.model.gcn_hidden = 8
    c.loss.group_size = 0
    c.optim.clip_lr = 1e-3
    c.optim.head_lr = 3e-3
    c.optim.clip_scaled_like_reference = False
    c.schedule.warmup_epochs = 0
    c.train.global_batch = 16
    c.eval.global_batch = 16
    c.train.epochs = 1
    c.train.log_every = 1
    c.train.best_metric = "zsl/mAP"
    return config_lib.set_values(c, overrides)


def random_batch(n, num_classes=17, size=32, seed=0):
    """A host batch as the pipelines yield it: uint8 images, float32 0/1 labels."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, num_classes)) < 0.15).astype(np.float32)
    labels[:, 12:] = 0  # unseen classes never appear in training
    return {"image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), "labels": labels}


def make_synthetic_data(root, num_images=160, shard_size=16):
    """A prepared synthetic mini Sewer-ML at 32 px (train and test splits, several shards each)."""
    raw, out = os.path.join(root, "raw"), os.path.join(root, "prepared")
    if not os.path.exists(out):
        synthetic.write(raw, num_images, seed=0, draw_size=64, save_size="draw")
        code = prepare.main(["sewerml", "--root", raw, "--out", out, "--image-size", "32", "--shard-size",
                             str(shard_size), "--workers", "1", "--no-progress"])
        assert code == 0
    return out


def train_tiny_workdir(root, spe: int) -> dict:
    """A tiny run trained for one epoch of `spe` steps on random batches, as a workdir (no evaluation):
    {root, workdir, data_dir, step}."""
    from sfr_jax.train import loop  # (the training loop: only the tests that train need it)

    clip_dir = make_tiny_clip_dir(os.path.join(root, "clip"))
    data_dir = make_synthetic_data(os.path.join(root, "data"))
    config = tiny_config(clip_dir, data_dir, **{"train.epochs": 1, "train.best_metric": ""})
    workdir = os.path.join(root, "wd")
    loop.train(config, workdir, spe=spe, batches=lambda s: (random_batch(16, seed=i) for i in range(s, spe)))
    return dict(root=root, workdir=workdir, data_dir=data_dir, step=spe)


def cli_args(clip_dir, data_dir, workdir, *extra):
    """`sfr-jax train` arguments for a tiny run on the synthetic data (configs/demo.py shrunk)."""
    return ["--config", os.path.join(REPO, "configs", "demo.py"), "--workdir", str(workdir),
            f"--config.clip_dir={clip_dir}", f"--config.data.dir={data_dir}", "--config.model.bottleneck_dim=8",
            "--config.model.head_hidden=16", "--config.model.gcn_hidden=8", "--config.train.global_batch=16",
            "--config.eval.global_batch=16", "--config.data.shuffle_buffer=64", "--config.train.log_every=1",
            # what configs/demo.py held before it became the demo's own config (64 px, its prompts file, ...)
            "--config.seed=42", "--config.data.image_size=32", "--config.data.descriptions=",
            "--config.data.augment=True", "--config.train.epochs=3", *extra]


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
