"""SPEC §6 augmentations as TF ops, against hand-computed numpy versions."""
import math

import numpy as np
import pytest

from sfr_jax.data import augment
from sfr_jax.data.augment import AugConfig
from sfr_jax.data.pipeline import tf_cpu

OFF = AugConfig.off()


@pytest.fixture(scope="module")
def tf():
    return tf_cpu()


def _images(batch=6, size=12, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)


def _run(tf, images, cfg, seed=(1, 2)):
    return augment.augment_batch(tf.constant(images), tf.constant(seed, tf.int64), cfg).numpy()


def _pad_crop(image, dx, dy, flip, pad=10):
    """torchvision Pad(pad) + crop at (pad + dy, pad + dx), after an optional mirror; numpy by hand."""
    image = image[:, ::-1] if flip else image
    h, w = image.shape[:2]
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    return padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def test_flip_only_mirrors_every_image(tf):
    images = _images()
    np.testing.assert_array_equal(_run(tf, images, OFF.replace(hflip_prob=1.0)), images[:, :, ::-1])
    np.testing.assert_array_equal(_run(tf, images, OFF), images)  # everything off: identity


def test_pad_and_random_crop_is_a_zero_padded_shift(tf):
    images = _images(batch=16)
    out = _run(tf, images, OFF.replace(pad=3))
    shifts = set()
    for image, result in zip(images, out):
        matches = [(dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)
                   if np.array_equal(result, _pad_crop(image, dx, dy, False, pad=3))]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 4, "offsets are random per image"


def test_integer_path_equals_bilinear_warp_and_numpy(tf):
    images = _images(batch=4)
    flip = tf.constant([False, True, True, False])
    shift = tf.constant([[0, 0], [3, -2], [-10, 10], [12, 0]], tf.int32)
    fast = augment.shift_flip(tf, tf.constant(images), flip, shift).numpy()
    for i in range(4):
        dx, dy = shift.numpy()[i]
        expected = _pad_crop(images[i], dx, dy, bool(flip.numpy()[i]), pad=12)
        np.testing.assert_array_equal(fast[i], expected)
    # the general (interpolating) path gives the same values at integer positions
    w = images.shape[2]
    matrices = []
    for f, (dx, dy) in zip(flip.numpy(), shift.numpy()):
        m_flip = np.array([[-1, 0, w - 1], [0, 1, 0], [0, 0, 1]], np.float32) if f else np.eye(3, dtype=np.float32)
        matrices.append(m_flip @ np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float32))
    slow = augment.warp(tf, tf.constant(images), tf.constant(np.stack(matrices))).numpy()
    np.testing.assert_allclose(slow, fast, atol=1e-4)


def test_contrast_and_multiply_hand_computed(tf):
    images = _images()
    out = _run(tf, images, OFF.replace(contrast_prob=1.0, contrast_range=(1.25, 1.25)))
    np.testing.assert_allclose(out, np.clip(127.5 + 1.25 * (images - 127.5), 0, 255), rtol=1e-6, atol=1e-4)
    out = _run(tf, images, OFF.replace(multiply_prob=1.0, multiply_range=(1.1, 1.1)))
    np.testing.assert_allclose(out, np.clip(images * 1.1, 0, 255), rtol=1e-6, atol=1e-4)
    # per-channel factors: each channel scaled by its own constant
    out = _run(tf, images, OFF.replace(multiply_prob=1.0, multiply_per_channel_prob=1.0))
    ratio = out / np.maximum(images, 1e-3)
    unclipped = out < 254.9
    for b in range(len(images)):
        for c in range(3):
            r = ratio[b, ..., c][unclipped[b, ..., c]]
            assert 0.9 - 1e-5 <= r.min() and r.max() <= 1.1 + 1e-5 and np.ptp(r) < 1e-4


def test_blur_matches_opencv_style_3_tap_kernel(tf):
    images = _images(batch=2, size=9)
    sigma = np.array([0.3, 0.6], np.float32)
    out = augment._blur(tf, tf.constant(images), tf.constant(sigma)).numpy()
    for b, s in enumerate(sigma):
        k = np.exp(-np.arange(-1, 2) ** 2 / (2 * s * s))
        k /= k.sum()
        padded = np.pad(images[b], ((1, 1), (1, 1), (0, 0)), mode="reflect")  # numpy 'reflect' = reflect-101
        rows = sum(k[i] * padded[i:i + 9] for i in range(3))
        expected = sum(k[i] * rows[:, i:i + 9] for i in range(3))
        np.testing.assert_allclose(out[b], expected, rtol=1e-5, atol=1e-3)
    # the reference's range (sigma <= 0.2) cannot change a uint8 pixel: skipped, exactly
    uint8 = np.rint(images)
    np.testing.assert_array_equal(_run(tf, uint8, OFF.replace(blur_prob=1.0)), uint8)
    worst = augment._blur(tf, tf.constant(uint8), tf.fill([2], augment.BLUR_NOOP_SIGMA)).numpy()
    np.testing.assert_array_equal(np.rint(worst), uint8)
    np.testing.assert_array_equal(np.rint(augment._blur(tf, tf.constant(uint8), tf.fill([2], 0.2)).numpy()), uint8)
    # a wider range is applied
    assert np.abs(_run(tf, uint8, OFF.replace(blur_prob=1.0, blur_sigma_max=3.0)) - uint8).max() > 1


def test_noise_is_zero_mean_with_sigma_in_range(tf):
    images = np.full((8, 64, 64, 3), 128.0, np.float32)
    out = _run(tf, images, OFF.replace(noise_prob=1.0))
    delta = out - images
    assert abs(delta.mean()) < 0.05
    stds = delta.reshape(8, -1).std(axis=1)
    assert stds.max() <= 0.015 * 255 * 1.05 and stds.max() > 0.5
    plane = augment.normal_plane(tf, [200000], tf.constant([3, 4], tf.int64)).numpy()
    assert abs(plane.mean()) < 0.01 and abs(plane.std() - 1) < 0.01


def test_affine_and_crop_matrices_hand_computed(tf):
    seeds = tf.unstack(tf.random.experimental.stateless_split(tf.constant([7, 8], tf.int64), num=16))
    size = 21
    # pure rotation/scale about the centre: the centre pixel maps to itself
    cfg = OFF.replace(affine_prob=1.0, affine_translate=0.0)
    matrix, general, _, _ = augment.warp_matrices(tf, seeds, 32, size, size, cfg)
    centre = np.array([(size - 1) / 2, (size - 1) / 2, 1.0])
    np.testing.assert_allclose(matrix.numpy() @ centre, np.tile(centre, (32, 1)), atol=1e-4)
    assert general.numpy().all()
    linear = matrix.numpy()[:, :2, :2]
    dets = np.linalg.det(linear)
    assert (dets > 1 / 1.1 ** 2 - 1e-4).all() and (dets < 1 / 0.9 ** 2 + 1e-4).all()
    angles = np.degrees(np.arctan2(linear[:, 0, 1], linear[:, 0, 0]))
    assert np.abs(angles).max() <= 10 + 1e-3 and np.abs(angles).max() > 3
    # a crop of the whole image (crop_max 0) is the identity map
    matrix, _, _, _ = augment.warp_matrices(tf, seeds, 4, size, size, OFF.replace(crop_prob=1.0, crop_max=1e-9))
    np.testing.assert_allclose(matrix.numpy(), np.tile(np.eye(3), (4, 1, 1)), atol=1e-5)
    # rotation by 90 degrees, by hand: a bright pixel at (row 2, col 10) of 21x21 moves to (row 10, col 18)
    angle = math.radians(90)
    c = (size - 1) / 2
    forward = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    to_centre = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]])
    inverse = np.linalg.inv(np.linalg.inv(to_centre) @ forward @ to_centre).astype(np.float32)
    image = np.zeros((1, size, size, 1), np.float32)
    image[0, 2, 10] = 1.0
    out = augment.warp(tf, tf.constant(image), tf.constant(inverse[None])).numpy()[0, ..., 0]
    assert out[10, 18] == pytest.approx(1.0, abs=1e-4) and out.sum() == pytest.approx(1.0, abs=1e-4)


def test_full_augmentation_is_a_pure_function_of_the_seed(tf):
    images = _images(batch=8, size=16)
    a, b = _run(tf, images, AugConfig(), seed=(3, 4)), _run(tf, images, AugConfig(), seed=(3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, _run(tf, images, AugConfig(), seed=(3, 5)))
    assert a.min() >= 0 and a.max() <= 255
