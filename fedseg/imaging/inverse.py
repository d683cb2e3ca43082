"""Map an array on a case's stored (cropped, resampled, canonical) grid back onto its original scan.

This is the inverse of :func:`fedseg.workflow.preprocess.case.preprocess_case` for predictions: the array is
first put back into the full resampled grid (``crop_box`` inside ``resampled_size``, ``fill``
elsewhere), then resampled once, by physical position, onto the original reference (T1ce) grid
(size, spacing, origin and direction from ``geometry.original_*``). Because the resampled grid is
defined in the same physical space as the original scan, orientation changes need no special case:
the canonical reorientation is undone by the resampling itself. The returned image carries the
original grid, so writing it as NIfTI gives the original header geometry.

Use ``interpolator="nearest"`` for label maps and ``"linear"`` for probabilities (threshold after).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError
from fedseg.geometry import CaseGeometry

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["resampled_origin", "to_original_grid", "uncrop"]


def uncrop(array_zyx: np.ndarray, geometry: CaseGeometry, *, fill: float = 0) -> np.ndarray:
    """Return ``array_zyx`` placed at ``crop_box`` inside an array of the resampled grid's shape."""
    z0, z1, y0, y1, x0, x1 = geometry.crop_box
    expected = (z1 - z0, y1 - y0, x1 - x0)
    if array_zyx.ndim != 3 or tuple(array_zyx.shape) != expected:
        raise ImageError(f"inverse mapping expects an array of the stored grid's shape {expected} (Z, Y, X), "
                         f"got {tuple(array_zyx.shape)}")
    full_shape = tuple(reversed(geometry.resampled_size))
    if z1 > full_shape[0] or y1 > full_shape[1] or x1 > full_shape[2] or min(z0, y0, x0) < 0:
        raise ImageError(f"crop box {geometry.crop_box} does not fit the resampled grid {full_shape} (Z, Y, X)")
    full = np.full(full_shape, fill, dtype=array_zyx.dtype)
    full[z0:z1, y0:y1, x0:x1] = array_zyx
    return full


def resampled_origin(geometry: CaseGeometry) -> tuple[float, float, float]:
    """Return the origin of the full resampled grid (the stored origin moved back by the crop offset)."""
    z0, _, y0, _, x0, _ = geometry.crop_box
    direction = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    offset = direction @ (np.asarray(geometry.spacing, dtype=float) * np.asarray([x0, y0, z0], dtype=float))
    return tuple(float(v) for v in np.asarray(geometry.origin, dtype=float) - offset)  # type: ignore[return-value]


def to_original_grid(
    array_zyx: np.ndarray,
    geometry: CaseGeometry,
    *,
    interpolator: str = "nearest",
    fill: float = 0,
) -> sitk.Image:
    """Return ``array_zyx`` (on the stored cropped grid) resampled onto the original reference scan's grid.

    ``interpolator`` is ``"nearest"`` (label maps; the pixel type is kept) or ``"linear"`` (float32).
    Voxels of the original grid outside the resampled extent get ``fill``.
    """
    import SimpleITK as sitk

    kinds = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear}
    if interpolator not in kinds:
        raise ImageError(f"interpolator must be 'nearest' or 'linear', got {interpolator!r}")
    array = np.asarray(array_zyx)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if interpolator == "linear":
        array = array.astype(np.float32, copy=False)
    full = sitk.GetImageFromArray(uncrop(array, geometry, fill=fill))
    full.SetSpacing(geometry.spacing)
    full.SetOrigin(resampled_origin(geometry))
    full.SetDirection(geometry.direction)
    out = sitk.Resample(
        full,
        [int(s) for s in geometry.original_size],
        sitk.Transform(3, sitk.sitkIdentity),
        kinds[interpolator],
        [float(v) for v in geometry.original_origin],
        [float(v) for v in geometry.original_spacing],
        [float(v) for v in geometry.original_direction],
        float(fill),
        full.GetPixelID(),
    )
    return out
