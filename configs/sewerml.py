"""Sewer-ML with the reference recipe (SPEC §6): `sfr-jax train --config configs/sewerml.py --workdir DIR`.

Variants after a colon, comma-separated: `runlocal` (a few steps at batch 8), `bf16`, `step_schedule`.
Any value can be overridden: `--config.optim.head_lr=2e-3`.
"""
from sfr_jax.config import apply_variants, base_config


def get_config(arg=None):
    config = base_config()
    config.name = "sewerml"
    config.clip_dir = "checkpoints/clip-b16"
    config.data.dir = "data/sewerml"
    config.data.class_set = "sewerml"
    return apply_variants(config, arg)
