"""Resampling: grids keep extent and centre, nearest keeps labels, transforms compose into one interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.errors import ImageError
from fedseg.imaging.resample import reference_grid, resample_to_spacing


def _ramp(direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    """An image whose value is the physical x coordinate (linear, so linear interpolation is exact)."""
    img = sitk.Image(20, 16, 10, sitk.sitkFloat32)
    img.SetSpacing((0.9, 1.1, 3.0))
    img.SetOrigin((-5.0, 2.0, 7.0))
    img.SetDirection(direction)
    arr = np.zeros((10, 16, 20), np.float32)
    for k in range(10):
        for j in range(16):
            for i in range(20):
                arr[k, j, i] = img.TransformIndexToPhysicalPoint((i, j, k))[0]
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def _centre(img: sitk.Image) -> np.ndarray:
    return np.asarray(img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in img.GetSize()]))


def test_reference_grid_keeps_centre_direction_and_extent() -> None:
    img = _ramp((0, 0, -1, 1, 0, 0, 0, -1, 0))
    ref = reference_grid(img, (1.0, 1.0, 1.0))
    assert ref.GetSize() == (18, 18, 30)  # 20*0.9, 16*1.1=17.6, 10*3
    assert ref.GetSpacing() == (1.0, 1.0, 1.0)
    assert ref.GetDirection() == img.GetDirection()
    assert np.allclose(_centre(ref), _centre(img))


def test_linear_resampling_of_a_linear_field_is_exact_inside() -> None:
    img = _ramp()
    out = resample_to_spacing(img, (1.0, 1.0, 1.0))
    assert out.GetPixelID() == sitk.sitkFloat32
    arr = sitk.GetArrayFromImage(out)
    k, j, i = 12, 8, 9  # well inside the field of view
    assert arr[k, j, i] == pytest.approx(out.TransformIndexToPhysicalPoint((i, j, k))[0], abs=1e-4)


def test_nearest_keeps_label_values_and_type() -> None:
    rng = np.random.default_rng(0)
    lab = sitk.GetImageFromArray(rng.choice(np.array([0, 1, 2, 4], np.uint8), size=(8, 9, 10)))
    lab.SetSpacing((1.0, 1.0, 3.0))
    out = resample_to_spacing(lab, (0.7, 0.7, 0.7), interpolator="nearest")
    assert out.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2, 4}


def test_transform_is_composed_into_one_resampling() -> None:
    img = _ramp()
    shift = sitk.TranslationTransform(3, (2.5, 0.0, 0.0))  # output point p reads the input at p + 2.5 mm in x
    ref = reference_grid(img, (1.0, 1.0, 1.0))
    out = resample_to_spacing(img, None, transform=shift, reference=ref, interpolator="bspline")
    arr = sitk.GetArrayFromImage(out)
    k, j, i = 12, 8, 6
    assert arr[k, j, i] == pytest.approx(out.TransformIndexToPhysicalPoint((i, j, k))[0] + 2.5, abs=1e-3)


def test_bad_arguments_raise() -> None:
    img = _ramp()
    with pytest.raises(ImageError, match="interpolator"):
        resample_to_spacing(img, (1, 1, 1), interpolator="cubic")
    with pytest.raises(ImageError, match="spacing"):
        reference_grid(img, (1.0, 0.0, 1.0))
    with pytest.raises(ImageError, match="neither"):
        resample_to_spacing(img, None)
