"""The demo's stand-in for OpenAI's web pre-training: a tiny CLIP trained contrastively on captioned 'web' frames.

Captions name every defect of a frame by its class phrase (all 17 classes, seen and unseen, as web text
would). The result is written as a Hugging Face CLIPModel folder, the format real weights come in.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from safetensors.numpy import save_file

from sfr_jax.convert.hf import ours_to_hf
from sfr_jax.data import images as images_lib
from sfr_jax.data import raw, synthetic
from sfr_jax.data.raw import SEWERML_OFFICIAL_HEADER
from sfr_jax.errors import InputError
from sfr_jax.fileio import atomic_directory, atomic_path, atomic_write, ensure_dir, remove_stale_temps_in, write_json
from sfr_jax.models.clip import CLIP, CLIPConfig, TextConfig, VisionConfig
from sfr_jax.models.rs import RSConfig
from sfr_jax.models.store import flat_params
from sfr_jax.text.classes import load_class_set

# Web-like alt texts; the zero-shot class prompt is the first template with one phrase.
CAPTION_TEMPLATES = ("a photo of a sewer pipe with {}.", "{} in a sewer pipe.", "sewer inspection photo showing {}.")
NORMAL_CAPTIONS = ("a photo of a sewer pipe.", "a photo of a clean sewer pipe without defects.",
                   "sewer inspection photo of an intact pipe.")
PROMPT_TEMPLATE = CAPTION_TEMPLATES[0]
CAPTIONS_FILE = "captions.csv"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides the tiny CLIP's weights: the web set drawn (how many frames, its seed and
    draw size, the held-out share), its captions' seed, the model's size and the training."""

    web_images: int
    web_seed: int
    draw_size: int
    val_fraction: float
    caption_seed: int
    image_size: int
    steps: int
    seed: int
    jitter: bool
    lr: float = 2e-3
    batch_size: int = 128

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def write_web_set_of(out: str, recipe: Recipe) -> dict:
    """The recipe's web set (frames, CSVs and captions naming Sewer-ML's phrases) under `out`; {split: count}."""
    counts = write_web_set(out, recipe.web_images, recipe.web_seed, draw_size=recipe.draw_size,
                           val_fraction=recipe.val_fraction)
    write_captions(out, load_class_set("sewerml"), recipe.caption_seed)
    return counts


def train_tiny_clip(web: str, recipe: Recipe, class_set, tokenizer, log=None):
    """(model, final loss): the tiny CLIP of `recipe` pre-trained on the web set under `web`."""
    images, labels, files = load_split_images(web, "train", class_set, recipe.image_size)
    captions = read_captions(web, "train", files)
    config = tiny_config(recipe.image_size, patch_size=max(1, recipe.image_size // 8))  # an 8 x 8 patch grid
    if log:
        log(f"    {len(images)} captioned web frames, e.g. \"{captions[0]}\"")
        log(f"    tiny CLIP: ViT {config.vision.hidden_size}w x{config.vision.num_hidden_layers} patch "
            f"{config.vision.patch_size} @ {recipe.image_size}px, text {config.text.hidden_size}w x"
            f"{config.text.num_hidden_layers}, vocabulary {config.text.vocab_size} (OpenAI's BPE)")
    model, loss = pretrain(images, tokenizer.encode(captions), label_groups(labels), config, steps=recipe.steps,
                           batch_size=recipe.batch_size, lr=recipe.lr, seed=recipe.seed, jitter=recipe.jitter,
                           log=log)
    return model, loss


def class_prompts(phrases: Sequence[str]) -> list:
    """The demo's class prompts: one short sentence per class naming its phrase, as the captions do."""
    return [PROMPT_TEMPLATE.format(p.lower()) for p in phrases]


def caption(rng: np.random.Generator, phrases: Sequence[str]) -> str:
    """A web-style caption naming all given phrases, in random order, with a random template."""
    if not phrases:
        return NORMAL_CAPTIONS[rng.integers(len(NORMAL_CAPTIONS))]
    order = [phrases[i].lower() for i in rng.permutation(len(phrases))]
    text = order[0] if len(order) == 1 else ", ".join(order[:-1]) + " and " + order[-1]
    return CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))].format(text)


def web_labels(rng: np.random.Generator, codes: Sequence[str], normal_fraction: float = 0.15,
               pair_fraction: float = 0.2) -> dict:
    """Labels of one web frame: like web photos, mostly one subject (a uniform choice among all classes),
    sometimes two, sometimes none; unlike Sewer-ML, rare classes are not rare on the web."""
    labels = dict.fromkeys(codes, 0)
    u = rng.uniform()
    if u < normal_fraction:
        return labels
    for index in rng.choice(len(codes), size=2 if u > 1 - pair_fraction else 1, replace=False):
        labels[codes[index]] = 1
    return labels


def write_web_set(out: str, num_images: int, seed: int, *, draw_size: int = 96, val_fraction: float = 0.1) -> dict:
    """The web-style pre-training frames in the official Sewer-ML raw format (PNGs + SewerML_*.csv), drawn by
    the synthetic renderer with web_labels; frame i depends only on (seed, i). Returns {split: count}."""
    image_dir = ensure_dir(os.path.join(out, "images"))
    remove_stale_temps_in(image_dir)
    num_test = int(round(num_images * val_fraction))
    rows = {"train": [], "test": []}
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        labels = web_labels(rng, synthetic.CODES)
        water = int(rng.choice(synthetic.WATER_LEVELS))
        image = synthetic.render(rng, labels, draw_size, "web", water)
        name = f"{index + 1:08d}.png"
        with atomic_path(os.path.join(image_dir, name), clean=False) as tmp:
            image.save(tmp, format="PNG", compress_level=1)
        rows["train" if index < num_images - num_test else "test"].append((name, labels, water))
    for split, filename in (("train", "SewerML_Train.csv"), ("test", "SewerML_Val.csv")):
        with atomic_write(os.path.join(out, filename), newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(SEWERML_OFFICIAL_HEADER)
            for name, labels, water in rows[split]:
                defect = int(any(labels.values()))
                writer.writerow([name, water, 0] + [labels[c] for c in SEWERML_OFFICIAL_HEADER[3:20]]
                                + [1 - defect, defect])
    return {split: len(r) for split, r in rows.items()}


def write_captions(root: str, class_set, seed: int) -> str:
    """Caption every frame of a synthetic raw set (official CSVs under root) into root/captions.csv."""
    rng = np.random.default_rng([seed, 7])
    rows = []
    for source in raw.find_sources("sewerml", root):
        split = raw.read_split(source, class_set.codes)
        for name, labels in zip(split.filenames, split.labels):
            phrases = [class_set.phrases[i] for i in np.flatnonzero(labels)]
            rows.append((source.name, name, caption(rng, phrases)))
    path = os.path.join(root, CAPTIONS_FILE)
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "filename", "caption"])
        writer.writerows(rows)
    return path


def load_split_images(root: str, split: str, class_set, image_size: int):
    """(uint8 images [N, S, S, 3], labels [N, C] in class-set order, filenames) of one raw split."""
    source = {s.name: s for s in raw.find_sources("sewerml", root)}[split]
    rows = raw.read_split(source, class_set.codes)
    images = np.zeros((len(rows.filenames), image_size, image_size, 3), np.uint8)
    for i, name in enumerate(rows.filenames):
        images[i] = images_lib.load(os.path.join(source.image_dir, name), image_size, "bicubic")
    return images, np.asarray(rows.labels, np.int32), list(rows.filenames)


def read_captions(root: str, split: str, filenames: Sequence[str]) -> list:
    with open(os.path.join(root, CAPTIONS_FILE), newline="") as handle:
        table = {(r["split"], r["filename"]): r["caption"] for r in csv.DictReader(handle)}
    missing = [f for f in filenames if (split, f) not in table]
    if missing:
        raise InputError(f"{os.path.join(root, CAPTIONS_FILE)}: no caption for {missing[:3]} ({len(missing)} in all)")
    return [table[(split, f)] for f in filenames]


def normalise(images_uint8, mean=0.5, std=0.5):
    return ((np.asarray(images_uint8, np.float32) / 255.0) - mean) / std


def tiny_config(image_size: int = 64, patch_size: int = 8, width: int = 64, layers: int = 3,
                text_width: int = 64, text_layers: int = 2, projection_dim: int = 64, context: int = 77):
    """The demo CLIP: a few layers, small width, the full CLIP BPE vocabulary."""
    return CLIPConfig(VisionConfig(width, 2 * width, layers, max(1, width // 32), image_size, patch_size),
                      TextConfig(text_width, 2 * text_width, text_layers, max(1, text_width // 32),
                                 max_position_embeddings=context), projection_dim)


def _contrastive_loss(image_features, text_features, groups, logit_scale):
    """Symmetric CLIP loss; frames with the same label set (same caption meaning) count as positives."""
    img = image_features / jnp.linalg.norm(image_features, axis=-1, keepdims=True)
    txt = text_features / jnp.linalg.norm(text_features, axis=-1, keepdims=True)
    logits = jnp.exp(jnp.clip(logit_scale, 0.0, np.log(100.0))) * img @ txt.T
    same = (groups[:, None] == groups[None, :]).astype(jnp.float32)
    targets = same / same.sum(-1, keepdims=True)
    loss_i = -(targets * jax.nn.log_softmax(logits, axis=-1)).sum(-1).mean()
    loss_t = -(targets * jax.nn.log_softmax(logits.T, axis=-1)).sum(-1).mean()
    return 0.5 * (loss_i + loss_t)


def photometric_jitter(rng: np.random.Generator, batch_uint8):
    """Web photos vary in exposure and quality: random brightness, contrast and sensor noise per image
    (generic jitter; none of the cctv style's colour cast, vignette, blur or overlay)."""
    x = batch_uint8.astype(np.float32)
    n = len(x)
    gain = rng.uniform(0.5, 1.2, (n, 1, 1, 1)).astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(0.7, 1.3, (n, 1, 1, 1)).astype(np.float32)
    x = ((x - mean) * contrast + mean) * gain
    x += rng.normal(0, 1, x.shape[:3] + (1,)).astype(np.float32) * rng.uniform(0, 8, (n, 1, 1, 1)).astype(np.float32)
    return np.clip(x, 0, 255)


def pretrain(images, tokens, groups, config, *, steps: int, batch_size: int = 128, lr: float = 2e-3,
             seed: int = 0, jitter: bool = False, log: Optional[Callable[[str], None]] = None):
    """Train a fresh CLIP of `config` (no adapters) contrastively; returns (model, final loss).

    The step is a pure jax.jit of the parameter state rather than an nnx.jit of the model and optimiser:
    the same computation (bit for bit, tested), without re-walking the module graph on every call.
    """
    model = CLIP(config, RSConfig(enabled=False), rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 10), steps, lr * 0.05)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.05))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, pixels, ids, grp):
        def loss_fn(params):
            clip = nnx.merge(graphdef, params, rest)
            return _contrastive_loss(clip.encode_image(pixels)[:, 0], clip.encode_text(ids), grp,
                                     clip.logit_scale[...])

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    n = len(images)
    batch_size = min(batch_size, n)
    order, cursor, loss, start = rng.permutation(n), 0, float("nan"), time.time()
    for i in range(steps):
        if cursor + batch_size > n:
            order, cursor = rng.permutation(n), 0
        idx = np.sort(order[cursor:cursor + batch_size])
        cursor += batch_size
        batch = images[idx]
        flip = rng.uniform(size=len(idx)) < 0.5  # the one augmentation: mirrored pipes are still pipes
        batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
        if jitter:
            batch = photometric_jitter(rng, batch)
        params, opt_state, loss = step(params, opt_state, jnp.asarray(normalise(batch)), jnp.asarray(tokens[idx]),
                                       jnp.asarray(groups[idx]))
        if log and (i + 1) % max(1, steps // 10) == 0:
            log(f"  pre-train step {i + 1}/{steps}  loss {float(loss):.3f}  ({time.time() - start:.0f}s)")
    nnx.update(model, params)
    return model, float(loss)


def label_groups(labels) -> np.ndarray:
    """An int per frame identifying its label set (bit mask over classes)."""
    labels = np.asarray(labels, np.int64)
    return (labels * (1 << np.arange(labels.shape[1], dtype=np.int64))).sum(-1)


def encode_images(model, images_uint8, batch_size: int = 256) -> np.ndarray:
    """Global (class-token) CLIP image features [N, E], l2-normalised."""
    @nnx.jit
    def run(model, pixels):
        return model.encode_image(pixels)[:, 0]

    out = [np.asarray(run(model, jnp.asarray(normalise(images_uint8[i:i + batch_size]))))
           for i in range(0, len(images_uint8), batch_size)]
    feats = np.concatenate(out)
    return feats / np.linalg.norm(feats, axis=-1, keepdims=True)


def encode_texts(model, tokens) -> np.ndarray:
    """CLIP text features [N, E], l2-normalised."""
    feats = np.asarray(model.encode_text(jnp.asarray(tokens)))
    return feats / np.linalg.norm(feats, axis=-1, keepdims=True)


def save_hf_clip(model, out_dir: str, tokenizer) -> str:
    """Write `model` as a Hugging Face CLIPModel folder (config.json, model.safetensors, tokenizer files),
    atomically: a temporary sibling folder renamed at the end."""
    out_dir = os.path.abspath(out_dir)
    with atomic_directory(out_dir) as tmp:
        # (np.ascontiguousarray would turn the 0-d logit_scale into shape [1])
        state = {k: np.array(v, np.float32, order="C") for k, v in ours_to_hf(flat_params(model)).items()}
        save_file(state, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        hf = model.config.to_hf_dict()
        hf["torch_dtype"] = "float32"
        write_json(os.path.join(tmp, "config.json"), hf, indent=2)
        tokenizer.save(tmp)
    return out_dir
