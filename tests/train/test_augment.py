"""Augmentation: flips keep image and label aligned; intensity changes stay finite and seeded."""

from __future__ import annotations

import numpy as np

from fedseg.train.augment import augment_intensity, random_flip


def test_flips_keep_image_and_label_aligned() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, size=(5, 6, 7)).astype(np.uint8)
    image = np.stack([label * 1.0, label * 2.0]).astype(np.float32)
    seen = set()
    for seed in range(16):
        im, lb = random_flip(image, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(im[1], 2.0 * lb)
        seen.add(tuple(np.array_equal(im[0], np.flip(image[0], a)) for a in range(3)))
    assert len(seen) > 2  # different axes flip for different draws


def test_intensity_is_finite_seeded_and_keeps_constant_channels() -> None:
    image = np.random.default_rng(1).normal(size=(3, 8, 8, 8)).astype(np.float32)
    image[2] = 0.0
    out = augment_intensity(image, np.random.default_rng(5), p_scale=1, p_shift=0, p_gamma=1, p_noise=0)
    again = augment_intensity(image, np.random.default_rng(5), p_scale=1, p_shift=0, p_gamma=1, p_noise=0)
    np.testing.assert_array_equal(out, again)
    assert out.dtype == np.float32 and np.isfinite(out).all() and not np.array_equal(out, image)
    np.testing.assert_array_equal(out[2], 0.0)  # a zero channel stays zero under scale and gamma
    assert (image[2] == 0.0).all()  # input untouched
    same = augment_intensity(image, np.random.default_rng(5), p_scale=0, p_shift=0, p_gamma=0, p_noise=0)
    np.testing.assert_array_equal(same, image)
