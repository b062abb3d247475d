"""Stage data: the synthetic mini Sewer-ML in the raw format, 'web' frames with captions for the tiny CLIP's
pre-training and 'cctv' frames for SFR-Net, both sets drawn in parallel."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from sfr_jax.data import synthetic
from sfr_jax.demo import pretrain as dp
from sfr_jax.demo.engine import Stage, say, show


def web_recipe(ctx) -> dp.Recipe:
    """The tiny CLIP's recipe of this run: the web set this stage draws and the clip stage's training."""
    return dp.Recipe(web_images=ctx.size["web"], web_seed=1000 + ctx.seed, draw_size=ctx.size["draw"],
                     val_fraction=0.1, caption_seed=ctx.seed, image_size=ctx.image_size,
                     steps=ctx.size["pretrain_steps"], seed=ctx.seed, jitter=ctx.size["jitter"])


def run(ctx) -> dict:
    """Write the web (pre-training, with captions) and cctv (target) sets in parallel."""
    size, seed = ctx.size, ctx.seed
    cctv = dict(num_images=size["cctv"], seed=2000 + seed, val_fraction=size["test_fraction"],
                draw_size=size["draw"], save_size="draw", style="cctv", normal_fraction=0.4)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {"web": pool.submit(dp.write_web_set_of, ctx.path("raw", "web"), web_recipe(ctx)),
                   "cctv": pool.submit(synthetic.write, ctx.path("raw", "cctv"), **cctv)}
        counts = {name: f.result() for name, f in futures.items()}
    for name, c in counts.items():
        say(f"    {name}: {c['train']} + {c['test']} frames in {show(ctx.path('raw', name))}")
    return {"counts": counts}


STAGE = Stage("data", "synthetic mini Sewer-ML (web + cctv styles)", run,
              params=lambda ctx: {"size": ctx.size, "seed": ctx.seed}, outputs=lambda ctx: [ctx.path("raw")])
