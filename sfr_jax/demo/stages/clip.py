"""Stage clip: a tiny CLIP pre-trained contrastively on the web frames (seed 0's ships with sfr_jax),
saved as a Hugging Face CLIPModel folder (checked by reloading it with transformers), then converted with
`sfr-jax convert-clip` like real weights."""
from __future__ import annotations

import numpy as np

from sfr_jax.demo import pretrain as dp
from sfr_jax.demo import shipped_clip
from sfr_jax.demo.engine import Stage, run_verb, say, show
from sfr_jax.demo.stages import data
from sfr_jax.eval.metrics import mean_average_precision
from sfr_jax.text.classes import load_class_set
from sfr_jax.text.tokenizer import ClipTokenizer


def run(ctx) -> dict:
    """Pre-train the tiny CLIP on the web set (or open the shipped result of the same recipe), save it in HF
    format, check transformers loads it, convert it."""
    class_set = load_class_set("sewerml")
    web, recipe, tokenizer = ctx.path("raw", "web"), data.web_recipe(ctx), ClipTokenizer.default()
    shipped = None if ctx.pretrain_here else shipped_clip.find(recipe)
    if shipped:
        model, loss = shipped_clip.load(), shipped["loss"]
        say(f"    this recipe's result ships with sfr_jax ({show(shipped_clip.FOLDER)}; tests/test_shipped_clip.py "
            "pre-trains it again and gets these weights): opened, not pre-trained (--pretrain-here to train it)")
    else:
        model, loss = dp.train_tiny_clip(web, recipe, class_set, tokenizer, log=say)
    images, labels, _ = dp.load_split_images(web, "test", class_set, ctx.image_size)
    web_zsl = web_zero_shot(model, images, labels, class_set, tokenizer)
    say(f"    plain CLIP zero-shot on the web-style test frames (no domain gap): ZSL mAP {100 * web_zsl:.2f}")
    hf_dir = dp.save_hf_clip(model, ctx.path("clip_hf"), tokenizer)
    check = check_hf_clip(hf_dir, model, images[:4])
    say(f"    saved {hf_dir} (Hugging Face CLIPModel; transformers reloads it, max |diff| {check:.1e})")
    run_verb(["convert-clip", "--from", hf_dir, "--out", ctx.path("clip"), "--overwrite"])
    return {"loss": loss, "hf_max_abs_diff": check, "web_zsl_map": web_zsl, "shipped": bool(shipped)}


def web_zero_shot(model, images, labels, class_set, tokenizer) -> float:
    """Plain CLIP ZSL mAP on the held-out web-style frames (uint8 images, labels in class-set order): what
    the CLIP knows before the domain gap."""
    unseen = list(class_set.ids("zsl"))
    text = dp.encode_texts(model, tokenizer.encode([dp.class_prompts(class_set.phrases)[i] for i in unseen]))
    return float(mean_average_precision(dp.encode_images(model, images) @ text.T, labels[:, unseen]))


def check_hf_clip(hf_dir: str, model, images_uint8) -> float:
    """Load hf_dir with transformers.CLIPModel and compare its image embeddings with ours; returns max |diff|."""
    import torch  # lazy, as transformers: only this check needs them
    import transformers

    transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar would break the demo's screen
    hf = transformers.CLIPModel.from_pretrained(hf_dir).eval()
    pixels = torch.from_numpy(dp.normalise(images_uint8)).permute(0, 3, 1, 2)
    with torch.no_grad():
        theirs = hf.get_image_features(pixel_values=pixels)
        theirs = getattr(theirs, "pooler_output", theirs)
    theirs = theirs.numpy()
    theirs = theirs / np.linalg.norm(theirs, axis=-1, keepdims=True)
    diff = float(np.abs(theirs - dp.encode_images(model, images_uint8)).max())
    if not diff < 1e-3:
        raise RuntimeError(f"{hf_dir}: transformers' CLIPModel disagrees with ours (max |diff| {diff})")
    return diff


def _where(ctx) -> list:
    return [("tiny CLIP (Hugging Face)", ctx.path("clip_hf"), ""), ("tiny CLIP (converted)", ctx.path("clip"), "")]


def _report(ctx) -> list:
    web = ctx.info.get("clip", {}).get("web_zsl_map")
    return [] if web is None else [f"Domain gap: the same plain CLIP scores ZSL mAP {100 * web:.2f} on web-style "
                                   "test frames."]


STAGE = Stage("clip", "tiny CLIP: contrastive pre-training on the web set", run,
              params=lambda ctx: data.web_recipe(ctx).as_dict(),
              outputs=lambda ctx: [ctx.path("clip_hf"), ctx.path("clip")], report=_report, where=_where)
