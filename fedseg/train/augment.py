"""Patch augmentation: random flips and intensity scale/shift/gamma/noise (NumPy, seeded generator).

The intensity transforms follow nnU-Net's defaults in spirit (Isensee et al., Nature Methods 2021):
each is applied per channel with a probability, to z-scored images. Gamma works on the patch rescaled to
[0, 1] and maps back to the original range, so it never produces NaN from negative intensities.
Labels are only flipped, never resampled, so no interpolation is involved.
"""

from __future__ import annotations

import numpy as np

__all__ = ["augment_intensity", "random_flip"]


def random_flip(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flip image [C, Z, Y, X] and label [Z, Y, X] along each spatial axis with probability 1/2."""
    for axis in range(3):
        if rng.random() < 0.5:
            image = np.flip(image, axis=axis + 1)
            label = np.flip(label, axis=axis)
    return image, label


def augment_intensity(image: np.ndarray, rng: np.random.Generator, *, p_scale: float = 0.3, p_shift: float = 0.3,
                      p_gamma: float = 0.3, p_noise: float = 0.15) -> np.ndarray:
    """Return a float32 copy of ``image`` [C, ...] with random per-channel scale, shift, gamma and noise.

    Scale ~ U(0.9, 1.1), shift ~ U(-0.1, 0.1) (z-score units), gamma ~ U(0.7, 1.5), Gaussian noise with
    sigma ~ U(0, 0.1). A constant channel is left alone by gamma (its range is zero).
    """
    out = np.array(image, dtype=np.float32, copy=True)
    for c in range(out.shape[0]):
        channel = out[c]
        if rng.random() < p_scale:
            channel *= np.float32(rng.uniform(0.9, 1.1))
        if rng.random() < p_shift:
            channel += np.float32(rng.uniform(-0.1, 0.1))
        if rng.random() < p_gamma:
            gamma = np.float32(rng.uniform(0.7, 1.5))
            lo, hi = float(channel.min()), float(channel.max())
            if hi - lo > 1e-6:
                channel[...] = ((channel - lo) / (hi - lo)) ** gamma * (hi - lo) + lo
        if rng.random() < p_noise:
            sigma = rng.uniform(0.0, 0.1)
            channel += rng.normal(0.0, sigma, size=channel.shape).astype(np.float32)
    return out
