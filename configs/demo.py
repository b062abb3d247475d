"""The embedded CPU demo: a tiny CLIP on the synthetic mini Sewer-ML at 32 px (`make demo`).

The demo verb fills in clip_dir and data.dir; sizes here are for a 2-core CPU in minutes.
"""
from sfr_jax.train.config import apply_variants, base_config


def get_config(arg=None):
    config = base_config()
    config.name = "demo"
    config.clip_dir = "checkpoints/demo/clip"
    config.data.dir = "checkpoints/demo/data"
    config.data.class_set = "sewerml"
    config.data.image_size = 32
    config.data.shuffle_buffer = 1024
    config.model.bottleneck_dim = 16
    config.model.head_hidden = 64
    config.model.gcn_hidden = 16
    # The tiny model learns from scratch-like features: larger adapter lr than the reference's 5e-6.
    config.optim.clip_lr = 1e-3
    config.optim.head_lr = 3e-3
    config.schedule.kind = "step"
    config.schedule.warmup_epochs = 1
    config.schedule.period_epochs = 60
    config.train.global_batch = 32
    config.loss.group_size = 0  # one SCL group per batch
    config.optim.clip_scaled_like_reference = False  # no AMP loss scale in the demo
    config.train.epochs = 3
    config.train.log_every = 10
    config.eval.global_batch = 64
    return apply_variants(config, arg)
