"""Z-score intensity normalization inside the brain mask (pure NumPy).

Decisions, written down here as STYLE.md asks:

- Mean and standard deviation are taken over the voxels where ``mask`` is nonzero, in float64, with
  the population standard deviation (``ddof=0``), so the output has mean 0 and std exactly 1 inside.
- Voxels outside the mask are set to exactly 0 (the background the network sees).
- A constant image inside the mask (std == 0, e.g. a blank modality) has no contrast to scale: the
  output is 0 everywhere (inside as well), rather than an error or a division by zero.
- An empty mask, a shape mismatch or non-finite voxels inside the mask raise ImageError.
- The result is float32.
"""

from __future__ import annotations

import numpy as np

from fedseg.errors import ImageError

__all__ = ["zscore_in_mask"]


def zscore_in_mask(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return ``(array - mean) / std`` inside ``mask`` (statistics over the mask, ddof=0) and 0 outside."""
    if array.shape != mask.shape:
        raise ImageError(f"z-score: image shape {array.shape} does not match mask shape {mask.shape}")
    inside = mask.astype(bool, copy=False)
    values = array[inside].astype(np.float64)
    if values.size == 0:
        raise ImageError("z-score: the brain mask is empty, so there are no voxels to normalize over")
    if not np.all(np.isfinite(values)):
        raise ImageError(f"z-score: {int(np.sum(~np.isfinite(values)))} non-finite voxels inside the brain mask")
    out = np.zeros(array.shape, dtype=np.float32)
    mean = values.mean()
    std = values.std()  # ddof=0
    if std > 0.0 and np.isfinite(std):
        out[inside] = ((values - mean) / std).astype(np.float32)
    return out
