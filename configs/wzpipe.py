"""WZ-Pipe with the reference recipe: as Sewer-ML, but GZSL top-k in {3, 5} (reference configs/wzpipe.yml).

Variants after a colon, comma-separated: `runlocal`, `bf16`, `step_schedule`.
"""
from sfr_jax.config import apply_variants, base_config


def get_config(arg=None):
    config = base_config()
    config.name = "wzpipe"
    config.clip_dir = "checkpoints/clip-b16"
    config.data.dir = "data/wzpipe"
    config.data.class_set = "wzpipe"
    config.eval.topk_gzsl = (3, 5)
    # Sewer-ML's F2-CIW / F1-Normal have no WZ-Pipe counterpart; keep best-checkpoint choice on ZSL mAP.
    config.train.best_metric = "zsl/mAP"
    return apply_variants(config, arg)
