"""The reference's training augmentations (SPEC §6) as batched, stateless TensorFlow ops, uint8 in and out.

Every random number comes from a stateless op keyed by one seed per batch, so a batch's augmentation is
a pure function of (images, seed): this is what makes training input exactly resumable.
The reference's order is kept where it matters: pixel ops (blur, contrast, multiply, noise) on floats, then
the image is rounded to uint8 (imgaug and PIL hold uint8 images), then the horizontal flip and the zero
pad-and-random-crop on uint8, so the padding stays black. Where a crop or an affine is drawn, ONE bilinear
warp composed of crop, affine, flip and shift resamples the float image once instead.
The reference applies its imgaug ops in random order; a fixed order is used here (they nearly commute).
"""
from __future__ import annotations

import dataclasses
import functools
import math

from sfr_jax.tfcpu import tf_cpu

ALG = "philox"  # fixed, so the stream does not depend on the device TensorFlow picks
# A 3-tap Gaussian with sigma <= 0.25 moves a pixel by at most 4 * 255 * exp(-8) = 0.34 grey levels: it can
# never change a uint8 image, so the reference's blur (sigma 0..0.2, uint8 in and out) is an identity and
# is skipped below this sigma.
BLUR_NOOP_SIGMA = 0.25


@dataclasses.dataclass(frozen=True)
class AugConfig:
    """Probabilities and ranges of each augmentation; defaults are the reference's (SPEC §6)."""

    hflip_prob: float = 0.5  # the reference flips twice with p=0.5 each: the net flip probability is 0.5
    pad: int = 10  # zero-pad then random-crop back to size: a random integer shift in [-pad, pad]
    crop_prob: float = 0.2
    crop_max: float = 0.1  # each side cut by 0..crop_max of the size, then resized back
    blur_prob: float = 0.2
    blur_sigma_max: float = 0.2
    contrast_prob: float = 0.2
    contrast_range: tuple = (0.75, 1.25)  # v -> 127.5 + alpha (v - 127.5)
    affine_prob: float = 0.2
    affine_scale: tuple = (0.9, 1.1)  # x and y drawn independently
    affine_translate: float = 0.1  # fraction of the size, x and y
    affine_rotate: float = 10.0  # degrees
    noise_prob: float = 1.0
    noise_sigma_max: float = 0.015 * 255
    noise_per_channel_prob: float = 0.2
    multiply_prob: float = 1.0
    multiply_range: tuple = (0.9, 1.1)
    multiply_per_channel_prob: float = 0.2

    @classmethod
    def off(cls) -> "AugConfig":
        """No augmentation at all (evaluation)."""
        return cls(hflip_prob=0.0, pad=0, crop_prob=0.0, blur_prob=0.0, contrast_prob=0.0, affine_prob=0.0,
                   noise_prob=0.0, multiply_prob=0.0)

    def replace(self, **changes) -> "AugConfig":
        return dataclasses.replace(self, **changes)

    @property
    def enabled(self) -> bool:
        return any((self.hflip_prob, self.pad, self.crop_prob, self.blur_prob, self.contrast_prob,
                    self.affine_prob, self.noise_prob, self.multiply_prob))


def _uniform(tf, seed, shape, low=0.0, high=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, alg=ALG)


def _clip(tf, images):
    """Clip to 0..255 in one pass (tf.clip_by_value makes two), as the reference's uint8 round trips do."""
    return tf.raw_ops.ClipByValue(t=images, clip_value_min=tf.constant(0.0), clip_value_max=tf.constant(255.0))


def _coin(tf, seed, batch, prob):
    return _uniform(tf, seed, [batch]) < prob


def _blur(tf, images, sigma):
    """Separable 3-tap Gaussian blur (reflect-101 edges, as OpenCV); sigma [B]. Exact for sigma <= 0.3."""
    w1 = tf.exp(-1.0 / (2.0 * tf.maximum(sigma, 1e-6) ** 2))
    w1 = (w1 / (1.0 + 2.0 * w1))[:, None, None, None]
    w0 = 1.0 - 2.0 * w1
    padded = tf.pad(images, [[0, 0], [1, 1], [0, 0], [0, 0]], mode="REFLECT")  # REFLECT = OpenCV's reflect-101
    images = w0 * images + w1 * (padded[:, :-2] + padded[:, 2:])
    padded = tf.pad(images, [[0, 0], [0, 0], [1, 1], [0, 0]], mode="REFLECT")
    return w0 * images + w1 * (padded[:, :, :-2] + padded[:, :, 2:])


def _on_subset(tf, images, selected, fn, *args):
    """Apply fn(images[selected], *args[selected]) to the selected examples only (others unchanged)."""
    index = tf.where(selected)

    def update():
        result = fn(tf.gather_nd(images, index), *[tf.gather_nd(a, index) for a in args])
        return tf.tensor_scatter_nd_update(images, index, result)

    return tf.cond(tf.size(index) > 0, update, lambda: images)  # some ops reject an empty batch


def normal_plane(tf, shape, seed):
    """Approximately standard-normal noise, Irwin-Hall sum of the 4 bytes of a random int32 (tails cut at
    3.46 sigma): cheaper than exact normals (benchmarks/README.md) and indistinguishable as a few grey
    levels of noise."""
    bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None, dtype=tf.int32, alg=ALG)
    total = tf.bitwise.bitwise_and(bits, 255)
    for shift in (8, 16, 24):
        total += tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, shift), 255)
    return (tf.cast(total, tf.float32) - 510.0) * (1.0 / 147.80)  # mean 4*127.5, sd sqrt(4*(256^2-1)/12)


def _matrix(tf, rows):
    """[B,3,3] from nine [B] tensors (row-major)."""
    return tf.reshape(tf.stack(rows, axis=-1), [-1, 3, 3])


def warp_matrices(tf, seeds, batch, height, width, cfg: AugConfig):
    """Per-example geometry: (M [B,3,3] output -> input pixel coordinates = crop o affine o flip o shift,
    general [B] (crop or affine drawn: needs interpolation), flip [B] bool, shift [B,2] int32 (dx, dy))."""
    h, w = float(height), float(width)
    zeros, ones = tf.zeros([batch]), tf.ones([batch])
    eye = _matrix(tf, [ones, zeros, zeros, zeros, ones, zeros, zeros, zeros, ones])
    matrix, general = eye, tf.zeros([batch], tf.bool)
    if cfg.crop_prob > 0 and cfg.crop_max > 0:
        cut = _uniform(tf, seeds[0], [batch, 4], 0.0, cfg.crop_max)  # top, right, bottom, left
        top, left = tf.round(cut[:, 0] * h), tf.round(cut[:, 3] * w)
        ch, cw = h - top - tf.round(cut[:, 2] * h), w - left - tf.round(cut[:, 1] * w)
        sy, sx = ch / h, cw / w
        crop = _matrix(tf, [sx, zeros, left + 0.5 * sx - 0.5, zeros, sy, top + 0.5 * sy - 0.5, zeros, zeros, ones])
        applied = _coin(tf, seeds[1], batch, cfg.crop_prob)
        matrix, general = tf.where(applied[:, None, None], crop, eye), general | applied
    if cfg.affine_prob > 0:
        u = _uniform(tf, seeds[2], [batch, 5], -1.0, 1.0)
        lo, hi = cfg.affine_scale
        scale_x, scale_y = (lo + hi) / 2 + u[:, 0] * (hi - lo) / 2, (lo + hi) / 2 + u[:, 1] * (hi - lo) / 2
        tx, ty = u[:, 2] * cfg.affine_translate * w, u[:, 3] * cfg.affine_translate * h
        angle = u[:, 4] * cfg.affine_rotate * math.pi / 180.0
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (w - 1) / 2, (h - 1) / 2
        # inverse of p -> c + R S (p - c) + t:  p = c + S^-1 R^T (q - c - t)
        a, b = cos / scale_x, sin / scale_x
        c, d = -sin / scale_y, cos / scale_y
        qx, qy = -cx - tx, -cy - ty
        affine = _matrix(tf, [a, b, cx + a * qx + b * qy, c, d, cy + c * qx + d * qy, zeros, zeros, ones])
        applied = _coin(tf, seeds[3], batch, cfg.affine_prob)
        matrix, general = tf.matmul(matrix, tf.where(applied[:, None, None], affine, eye)), general | applied
    flip = _coin(tf, seeds[4], batch, cfg.hflip_prob) if cfg.hflip_prob > 0 else tf.zeros([batch], tf.bool)
    flip_matrix = _matrix(tf, [-ones, zeros, ones * (w - 1), zeros, ones, zeros, zeros, zeros, ones])
    matrix = tf.matmul(matrix, tf.where(flip[:, None, None], flip_matrix, eye))
    if cfg.pad > 0:
        shift = tf.random.stateless_uniform([batch, 2], seeds[5], minval=-cfg.pad, maxval=cfg.pad + 1,
                                            dtype=tf.int32, alg=ALG)
    else:
        shift = tf.zeros([batch, 2], tf.int32)
    dx, dy = tf.cast(shift[:, 0], tf.float32), tf.cast(shift[:, 1], tf.float32)
    matrix = tf.matmul(matrix, _matrix(tf, [ones, zeros, dx, zeros, ones, dy, zeros, zeros, ones]))
    return matrix, general, flip, shift


def shift_flip(tf, images, flip, shift):
    """The integer part of the geometry without interpolation: out(y, x) = in(y + dy, x') with
    x' = x + dx, mirrored (W-1-x') where flip; zero outside (= pad and random crop, horizontal flip).

    One image at a time: mirror, zero-pad by the largest shift, then ONE contiguous slice of the flattened
    padded image (a shift by (dx, dy) is an offset in it): cheaper per pixel in TensorFlow than batched
    gathers or reverses of [B,H,W,3] (benchmarks/README.md)."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    pad = tf.maximum(tf.reduce_max(tf.abs(shift)), 0)
    padded_width = width + 2 * pad
    # start of the window in the flattened padded image; one extra bottom row keeps the last slice inside
    start = ((pad + shift[:, 1]) * padded_width + pad + shift[:, 0]) * channels
    length = height * padded_width * channels

    def one(args):
        image, mirrored, offset = args
        image = tf.cond(mirrored, lambda: tf.reverse(image, [1]), lambda: image)
        flat = tf.reshape(tf.pad(image, [[pad, pad + 1], [pad, pad], [0, 0]]), [-1])
        return tf.slice(flat, offset[None], length[None])

    windows = tf.map_fn(one, (images, flip, start), fn_output_signature=images.dtype)
    out = tf.reshape(windows, [-1, height, padded_width, channels])[:, :, :width]
    return tf.ensure_shape(out, images.shape)


def warp(tf, images, matrices):
    """Resample [B,H,W,C] float images at matrices [B,3,3] (output -> input), bilinear, zero outside."""
    flat = tf.reshape(matrices, [-1, 9])[:, :8] / matrices[:, 2:3, 2]
    shape = tf.shape(images)[1:3]
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=flat, output_shape=shape,
                                                 fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def augment_batch(images, seed, cfg: AugConfig):
    """Augment uint8 images [B,H,W,3] with one stateless seed ([2] int); returns uint8 images."""
    tf = tf_cpu()
    if not cfg.enabled:
        return images
    if images.dtype != tf.uint8:
        raise TypeError(f"augment_batch takes uint8 images (0..255), got {images.dtype.name}")
    batch, height, width = images.shape[0], images.shape[1], images.shape[2]
    if batch is None:
        raise ValueError("augment_batch needs a static batch size (batch with drop_remainder=True)")
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, num=16, alg=ALG))
    images = tf.cast(images, tf.float32)
    if cfg.blur_prob > 0 and cfg.blur_sigma_max > BLUR_NOOP_SIGMA:
        sigma = _uniform(tf, seeds[6], [batch], 0.0, cfg.blur_sigma_max)
        images = _on_subset(tf, images, _coin(tf, seeds[7], batch, cfg.blur_prob), functools.partial(_blur, tf), sigma)
    if cfg.contrast_prob > 0:
        alpha = _uniform(tf, seeds[8], [batch], *cfg.contrast_range)[:, None, None, None]

        def contrast(x, a):
            return _clip(tf, x * a + 127.5 * (1.0 - a))

        images = _on_subset(tf, images, _coin(tf, seeds[9], batch, cfg.contrast_prob), contrast, alpha)
    if cfg.multiply_prob > 0:
        factors = _uniform(tf, seeds[10], [batch, 4], *cfg.multiply_range)
        applied = _coin(tf, seeds[12], batch, cfg.multiply_prob)
        factors = tf.where(applied[:, None], factors, 1.0)
        per_channel = _coin(tf, seeds[11], batch, cfg.multiply_per_channel_prob)
        # one factor per image is a cheap broadcast; per-channel factors (slow broadcast) only where drawn
        images = images * tf.where(per_channel, 1.0, factors[:, 3])[:, None, None, None]
        images = _on_subset(tf, images, per_channel, lambda x, f: x * f[:, None, None, :], factors[:, :3])
        images = _clip(tf, images)
    if cfg.noise_prob > 0 and cfg.noise_sigma_max > 0:
        sigma = _uniform(tf, seeds[13], [batch], 0.0, cfg.noise_sigma_max)
        sigma = tf.where(_coin(tf, seeds[14], batch, cfg.noise_prob), sigma, 0.0)[:, None, None, None]
        # Per-channel noise only where drawn (20 %): one shared plane for all, three planes for those.
        noisy = images + sigma * normal_plane(tf, [batch, height, width, 1], seeds[15])
        per_channel = _coin(tf, tf.random.experimental.stateless_fold_in(seeds[15], 1, alg=ALG), batch,
                            cfg.noise_per_channel_prob)
        index = tf.where(per_channel)
        planes = normal_plane(tf, tf.stack([tf.shape(index)[0], height, width, 3]),
                              tf.random.experimental.stateless_fold_in(seeds[15], 2, alg=ALG))
        subset = tf.gather_nd(images, index) + tf.gather_nd(sigma, index) * planes
        images = _clip(tf, tf.tensor_scatter_nd_update(noisy, index, subset))
    geometry = cfg.hflip_prob > 0 or cfg.pad > 0 or cfg.crop_prob > 0 or cfg.affine_prob > 0
    if geometry:
        # Bilinear resampling only where a crop or affine was drawn (its matrix includes flip and shift).
        matrix, general, flip, shift = warp_matrices(tf, seeds, batch, height, width, cfg)
        images = _on_subset(tf, images, general, lambda source, m: warp(tf, source, m), matrix)
    images = tf.cast(tf.round(images), tf.uint8)  # every op above kept 0..255
    if geometry:
        # Elsewhere flips and shifts are exact index moves on uint8 (what bilinear sampling at integer
        # positions gives), after the pixel ops as in the reference, so the padding stays black.
        plain = tf.logical_not(general)
        images = shift_flip(tf, images, flip & plain, tf.where(plain[:, None], shift, 0))
    return images
