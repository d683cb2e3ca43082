"""N4 bias-field correction inside the brain mask.

N4 (Tustison et al., "N4ITK: Improved N3 bias correction", IEEE TMI 29(6), 2010) fits a smooth
multiplicative field by B-spline approximation of the log image. For speed the field is estimated on
the image shrunk by ``shrink`` (default 4) and then evaluated on the full grid, as ANTs does; the
corrected image is ``image / exp(log_field)``. N4 works on the logarithm, so intensities must be
positive inside the mask: a non-positive minimum there is shifted up before and back after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["n4_correct"]

_ITERATIONS = (50, 40, 30)


def n4_correct(image: sitk.Image, mask: sitk.Image, *, shrink: int = 4) -> sitk.Image:
    """Return the float32 N4-corrected ``image`` (same grid), the field fitted inside ``mask``.

    Raises ImageError for an empty mask, grids that differ, or ``shrink`` < 1.
    """
    import SimpleITK as sitk

    from fedseg.imaging.register import grids_coincide
    from fedseg.imaging.threads import single_threaded

    if shrink < 1:
        raise ImageError(f"N4 shrink factor must be >= 1, got {shrink}")
    if not grids_coincide(image, mask):
        raise ImageError(f"N4: image grid {image.GetSize()} and mask grid {mask.GetSize()} differ")
    mask_u8 = sitk.Cast(mask > 0, sitk.sitkUInt8)
    inside = sitk.GetArrayViewFromImage(mask_u8).astype(bool)
    if not inside.any():
        raise ImageError("N4: the brain mask is empty")
    img = sitk.Cast(image, sitk.sitkFloat32)
    low = float(sitk.GetArrayViewFromImage(img)[inside].min())
    offset = 1.0 - low if low <= 0 else 0.0
    if offset:
        img = img + offset
    factors = [min(shrink, max(1, s // 8)) for s in img.GetSize()]
    small = sitk.Shrink(img, factors)
    small_mask = sitk.Shrink(mask_u8, factors)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(_ITERATIONS))
    with single_threaded():  # N4's B-spline fit sums per thread: one thread, one result
        n4.Execute(small, small_mask)
        log_field = n4.GetLogBiasFieldAsImage(img)
    corrected = img / sitk.Exp(log_field)
    if offset:
        corrected = corrected - offset
    out = sitk.Cast(corrected, sitk.sitkFloat32)
    out.CopyInformation(image)
    if not np.all(np.isfinite(sitk.GetArrayViewFromImage(out))):
        raise ImageError("N4 produced non-finite voxels")
    return out
