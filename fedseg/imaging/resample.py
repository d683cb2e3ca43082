"""Resampling onto a grid of a chosen spacing, in one interpolation.

A registration transform (fixed -> moving physical points, ITK's convention) can be composed in, so a
co-registered modality goes from its native grid to the target grid with one interpolation only.

Grids: :func:`reference_grid` keeps the physical *centre* and the direction of the input and covers
the same extent (``size * spacing`` per axis, rounded to whole voxels of the new spacing). Voxels that
fall outside the input get 0. Images are resampled as float32 (linear or B-spline, whose overshoot is
kept: it is a property of the interpolator, not an error); labels with ``"nearest"`` keep their pixel
type and values.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["Interpolator", "reference_grid", "resample_to_spacing"]


class Interpolator(str, enum.Enum):
    LINEAR = "linear"
    BSPLINE = "bspline"
    NEAREST = "nearest"


def _sitk_interpolator(kind: Interpolator) -> int:
    import SimpleITK as sitk

    table = {
        Interpolator.LINEAR: sitk.sitkLinear,
        Interpolator.BSPLINE: sitk.sitkBSpline,
        Interpolator.NEAREST: sitk.sitkNearestNeighbor,
    }
    return table[kind]


#: The largest resampled grid (voxels): 512³, 512 MiB per float32 modality; a 1 mm head needs ~16 M.
MAX_GRID_VOXELS = 512**3


def _check_spacing(spacing_xyz: Sequence[float]) -> tuple[float, float, float]:
    spacing = tuple(float(s) for s in spacing_xyz)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ImageError(f"target spacing must be three positive numbers (x, y, z mm), got {tuple(spacing_xyz)}")
    return spacing  # type: ignore[return-value]


def reference_grid(image: sitk.Image, spacing_xyz: Sequence[float], *, where: str = "image") -> sitk.Image:
    """Return an empty (uint8, zero) image on the physical extent of ``image`` at ``spacing_xyz`` mm.

    The new grid has the same direction and physical centre; its size per axis is
    ``max(1, round(size * spacing / new_spacing))``. A grid above :data:`MAX_GRID_VOXELS` is refused
    (ImageError naming ``where``) before anything is allocated: a header with absurd spacing (40 mm
    voxels) would otherwise ask for gigavoxels.
    """
    import SimpleITK as sitk

    spacing = np.asarray(_check_spacing(spacing_xyz))
    old_size = np.asarray(image.GetSize(), dtype=float)
    old_spacing = np.asarray(image.GetSpacing(), dtype=float)
    size = np.maximum(1, np.round(old_size * old_spacing / spacing)).astype(int)
    voxels = int(np.prod(size.astype(np.float64)))
    if voxels > MAX_GRID_VOXELS:
        extent = tuple(round(float(v)) for v in old_size * old_spacing)
        raise ImageError(f"{where}: resampling its {extent} mm field of view to {tuple(spacing.tolist())} mm needs "
                         f"{voxels:,} voxels, above the bound of {MAX_GRID_VOXELS:,} (512^3); check the header's "
                         "spacing or choose a coarser --spacing")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint(((old_size - 1) / 2).tolist()))
    origin = centre - direction @ ((size - 1) / 2 * spacing)
    ref = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    ref.SetSpacing(spacing.tolist())
    ref.SetOrigin(origin.tolist())
    ref.SetDirection(image.GetDirection())
    return ref


def resample_to_spacing(
    image: sitk.Image,
    spacing_xyz: Sequence[float] | None,
    *,
    interpolator: str | Interpolator = Interpolator.LINEAR,
    transform: sitk.Transform | None = None,
    reference: sitk.Image | None = None,
) -> sitk.Image:
    """Resample ``image`` once onto ``reference`` (or onto its own extent at ``spacing_xyz``).

    ``transform`` maps output-space points into ``image``'s space (what :func:`register_rigid` returns
    when ``image`` is the moving image). ``spacing_xyz`` may be None only when ``reference`` is given.
    """
    import SimpleITK as sitk

    try:
        kind = Interpolator(interpolator)
    except ValueError:
        raise ImageError(f"interpolator must be one of {[i.value for i in Interpolator]}, got {interpolator!r}") from None
    if reference is None:
        if spacing_xyz is None:
            raise ImageError("resampling needs a target spacing or a reference grid, got neither")
        reference = reference_grid(image, spacing_xyz)
    if kind is Interpolator.NEAREST:
        pixel_type = image.GetPixelID()
        source = image
    else:
        pixel_type = sitk.sitkFloat32
        source = sitk.Cast(image, sitk.sitkFloat32) if image.GetPixelID() != sitk.sitkFloat32 else image
    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(source, reference, tx, _sitk_interpolator(kind), 0.0, pixel_type)
