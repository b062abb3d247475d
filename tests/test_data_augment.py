"""SPEC §6 augmentations as TF ops (uint8 in and out), against hand-computed numpy versions."""
import math

import numpy as np
import pytest

from sfr_jax.data import augment
from sfr_jax.data.augment import AugConfig
from sfr_jax.tfcpu import tf_cpu

OFF = AugConfig.off()


@pytest.fixture(scope="module")
def tf():
    return tf_cpu()


def _images(batch=6, size=12, seed=0, low=0):
    return np.random.default_rng(seed).integers(low, 256, (batch, size, size, 3), dtype=np.uint8)


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
    images = _images(batch=4).astype(np.float32)
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
    x = images.astype(np.float64)
    rounded = 0.5 + 1e-3  # the result is rounded to uint8
    out = _run(tf, images, OFF.replace(contrast_prob=1.0, contrast_range=(1.25, 1.25)))
    assert out.dtype == np.uint8
    np.testing.assert_allclose(out, np.clip(127.5 + 1.25 * (x - 127.5), 0, 255), rtol=0, atol=rounded)
    out = _run(tf, images, OFF.replace(multiply_prob=1.0, multiply_range=(1.1, 1.1)))
    np.testing.assert_allclose(out, np.clip(x * 1.1, 0, 255), rtol=0, atol=rounded)
    # per-channel factors: each channel scaled by its own constant in [0.9, 1.1]
    images = _images(batch=6, size=24, low=60)
    x = images.astype(np.float64)
    out = _run(tf, images, OFF.replace(multiply_prob=1.0, multiply_per_channel_prob=1.0)).astype(np.float64)
    unclipped = out < 255
    for b in range(len(images)):
        factors = []
        for c in range(3):
            keep = unclipped[b, ..., c]
            source, result = x[b, ..., c][keep], out[b, ..., c][keep]
            # one factor f explains every pixel: round(s f) = r for all, i.e. the intervals intersect
            low, high = ((result - rounded) / source).max(), ((result + rounded) / source).min()
            assert low <= high and 0.9 - 1e-3 <= low and high <= 1.1 + 1e-3
            factors.append(low)
        assert np.ptp(factors) > 1e-3, "per-channel factors differ"


def test_blur_matches_opencv_style_3_tap_kernel(tf):
    images = _images(batch=2, size=9).astype(np.float32) + np.float32(0.25)
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
    np.testing.assert_array_equal(_run(tf, uint8.astype(np.uint8), OFF.replace(blur_prob=1.0)), uint8)
    worst = augment._blur(tf, tf.constant(uint8), tf.fill([2], augment.BLUR_NOOP_SIGMA)).numpy()
    np.testing.assert_array_equal(np.rint(worst), uint8)
    np.testing.assert_array_equal(np.rint(augment._blur(tf, tf.constant(uint8), tf.fill([2], 0.2)).numpy()), uint8)
    # a wider range is applied
    blurred = _run(tf, uint8.astype(np.uint8), OFF.replace(blur_prob=1.0, blur_sigma_max=3.0))
    assert np.abs(blurred - uint8).max() > 1


def test_noise_is_zero_mean_with_sigma_in_range(tf):
    images = np.full((8, 64, 64, 3), 128, np.uint8)
    out = _run(tf, images, OFF.replace(noise_prob=1.0))
    delta = out.astype(np.float64) - images
    assert abs(delta.mean()) < 0.05
    stds = delta.reshape(8, -1).std(axis=1)  # rounding adds 1/12 to the variance
    assert stds.max() <= math.sqrt((0.015 * 255) ** 2 + 1 / 12) * 1.05 and stds.max() > 0.5
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
    assert a.dtype == np.uint8 and a.shape == images.shape
    with pytest.raises(TypeError, match="uint8"):
        _run(tf, images.astype(np.float32), AugConfig())


def test_padding_stays_black_after_the_pixel_ops(tf):
    """As in the reference, pad-and-crop comes after contrast, multiply and noise: the zero band left by the
    shift is exactly 0 and the shifted image is not (contrast alone maps 0 to 127.5 (1 - alpha) > 0)."""
    images = _images(batch=16, size=20, low=80)
    cfg = OFF.replace(pad=4, hflip_prob=0.5, contrast_prob=1.0, contrast_range=(0.75, 0.8), multiply_prob=1.0,
                      noise_prob=1.0)
    out = _run(tf, images, cfg)
    shifts = set()
    for result in out:
        lit = result.min(axis=-1) > 0
        rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        assert lit[top:bottom, left:right].all(), "the shifted image is fully inside one rectangle"
        assert not result[:top].any() and not result[bottom:].any()
        assert not result[:, :left].any() and not result[:, right:].any()
        assert (top == 0 or bottom == 20) and (left == 0 or right == 20), "a shift moves the image to two edges"
        assert bottom - top >= 16 and right - left >= 16
        shifts.add((top, bottom, left, right))
    assert len(shifts) > 4
