"""The embedded demo's SFR-Net training (`make demo`): a tiny CLIP on the synthetic mini Sewer-ML at 64 px.

After `make demo`, `sfr-jax train --config configs/demo.py --workdir DIR` trains exactly the demo's
SFR-Net (same data, CLIP, prompts and seed; the demo only fills in other paths when run with --out).
Variants after a colon, comma-separated: `quick` (the shortened run of `sfr-jax demo --quick`), `rs` (the
+RS ablation row: no MEF, no GR), `rs_mef` (+RS +MEF: no GR), and those of the base config.
"""
from sfr_jax.config import apply_variants, base_config

DEMO_VARIANTS = ("quick", "rs", "rs_mef")


def get_config(arg=None):
    config = base_config()
    config.name = "demo"
    config.seed = 0
    config.clip_dir = "checkpoints/demo/clip"  # written by the demo's clip stage
    config.data.dir = "checkpoints/demo/data"  # written by its prepare stage
    config.data.descriptions = "checkpoints/demo/prompts.txt"  # the caption template with each class phrase
    config.data.class_set = "sewerml"
    config.data.image_size = 64
    config.data.shuffle_buffer = 1024
    # The reference's augmentation (pad 10 px + crop, affine, ...) is sized for 224 px; at 64 px it moves the
    # tiny motifs too far (benchmarks/README.md, "Demo settings").
    config.data.augment = False
    config.model.bottleneck_dim = 16
    config.model.head_hidden = 64
    config.model.gcn_hidden = 16
    # The tiny model learns from scratch-like features: larger adapter lr than the reference's 5e-6.
    config.optim.clip_lr = 1e-3
    config.optim.head_lr = 3e-3
    config.optim.clip_scaled_like_reference = False  # no AMP loss scale in the demo
    config.schedule.kind = "step"
    config.schedule.warmup_epochs = 1
    config.schedule.period_epochs = 60
    config.train.global_batch = 32
    config.train.epochs = 6
    config.train.log_every = 10
    config.loss.group_size = 0  # one SCL group per batch
    config.eval.global_batch = 64
    names = [v.strip() for v in (arg or "").split(",") if v.strip()]
    for variant in names:
        if variant == "quick":
            config.train.max_steps = 6
            config.train.log_every = 2
        elif variant == "rs":
            config.model.use_local = False
            config.model.use_gr = False
        elif variant == "rs_mef":
            config.model.use_gr = False
    return apply_variants(config, ",".join(v for v in names if v not in DEMO_VARIANTS))
