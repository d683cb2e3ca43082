"""Reorientation to fedseg's one canonical orientation.

fedseg works in **LPS** (DICOM / ITK convention): after :func:`to_canonical` the direction matrix is the
identity (up to the nearest axis permutation and flips), so the image's x axis runs to the patient's
left, y to posterior and z to superior; a [Z, Y, X] array from it therefore reads axial slices (Z)
from foot to head, each slice from anterior (row 0) to posterior and from right (column 0) to left.
Only axes are permuted and flipped: no voxel is interpolated, so the operation is exact and reversible.
Oblique scans keep their residual obliquity in the direction matrix (the closest axis-aligned
orientation is chosen), which later resampling onto an axis-aligned grid takes care of.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedseg.errors import ImageError

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["CANONICAL", "orientation_of", "to_canonical"]

#: The canonical orientation code (DICOM convention: the letters name where each axis points).
CANONICAL = "LPS"


def orientation_of(image: sitk.Image) -> str:
    """Return the three-letter orientation code (DICOM convention) closest to the image's direction."""
    import SimpleITK as sitk

    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def to_canonical(image: sitk.Image) -> sitk.Image:
    """Return ``image`` with its axes permuted and flipped to the canonical LPS orientation.

    Raises ImageError for an image that is not 3D.
    """
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ImageError(f"reorientation expects a 3D image, got {image.GetDimension()}D of size {image.GetSize()}")
    if orientation_of(image) == CANONICAL:
        return image
    return sitk.DICOMOrient(image, CANONICAL)
