"""Reorientation to LPS: exact axis permutation/flip, no interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.errors import ImageError
from fedseg.imaging.orient import CANONICAL, orientation_of, to_canonical


def _image(direction: tuple[float, ...]) -> sitk.Image:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # [Z, Y, X]
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 2.0, 3.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    img.SetDirection(direction)
    return img


def _values_at_points(img: sitk.Image, points: list[tuple[float, float, float]]) -> list[float]:
    return [img.GetPixel(img.TransformPhysicalPointToIndex(p)) for p in points]


@pytest.mark.parametrize(
    "direction",
    [
        (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0),  # RAS
        (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0),  # sagittal, permuted
        (1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0),  # LSA (the ITK example head)
    ],
)
def test_to_canonical_gives_identity_direction_and_same_physical_voxels(direction: tuple[float, ...]) -> None:
    img = _image(direction)
    out = to_canonical(img)
    assert orientation_of(out) == CANONICAL
    assert np.allclose(np.asarray(out.GetDirection()).reshape(3, 3), np.eye(3))
    assert sorted(out.GetSize()) == sorted(img.GetSize())
    # Every voxel keeps its physical position and value: sample the centres of a few input voxels.
    idx = [(0, 0, 0), (5, 4, 3), (2, 1, 3), (5, 0, 0)]
    points = [img.TransformIndexToPhysicalPoint(i) for i in idx]
    assert _values_at_points(out, points) == [img.GetPixel(i) for i in idx]


def test_canonical_input_is_returned_unchanged() -> None:
    img = _image((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    assert to_canonical(img) is img


def test_2d_image_is_rejected() -> None:
    with pytest.raises(ImageError, match="3D"):
        to_canonical(sitk.Image(4, 4, sitk.sitkUInt8))
