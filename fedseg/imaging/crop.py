"""Cropping to the brain's bounding box (pure NumPy, arrays [Z, Y, X]).

The box is half-open, ``(z0, z1, y0, y1, x0, x1)``, so ``array[z0:z1, y0:y1, x0:x1]`` is the crop; the
margin (in voxels) is added on every side and the box is clipped to the array. An empty mask has no
box: :func:`bounding_box` raises ImageError rather than guessing.
"""

from __future__ import annotations

import numpy as np

from fedseg.errors import ImageError

__all__ = ["Box", "apply_box", "bounding_box"]

Box = tuple[int, int, int, int, int, int]


def bounding_box(mask: np.ndarray, margin: int) -> Box:
    """Return the half-open box ``(z0, z1, y0, y1, x0, x1)`` of the nonzero voxels of ``mask`` plus ``margin``.

    The box is clipped to the array's extent. Raises ImageError for an empty or non-3D mask or a
    negative margin.
    """
    if mask.ndim != 3:
        raise ImageError(f"bounding box expects a 3D [Z, Y, X] mask, got shape {mask.shape}")
    if margin < 0:
        raise ImageError(f"bounding box margin must be >= 0 voxels, got {margin}")
    box: list[int] = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        if hits.size == 0:
            raise ImageError("bounding box of an empty mask: the brain mask has no voxel")
        box += [max(0, int(hits[0]) - margin), min(mask.shape[axis], int(hits[-1]) + 1 + margin)]
    return (box[0], box[1], box[2], box[3], box[4], box[5])


def apply_box(array: np.ndarray, box: Box) -> np.ndarray:
    """Return the view ``array[..., z0:z1, y0:y1, x0:x1]`` (leading channel axes are kept)."""
    z0, z1, y0, y1, x0, x1 = box
    return array[..., z0:z1, y0:y1, x0:x1]
