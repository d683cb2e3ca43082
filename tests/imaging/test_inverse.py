"""The inverse mapping: stored cropped grid -> original reference scan grid and header."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.errors import ImageError
from fedseg.geometry import CaseGeometry
from fedseg.imaging.crop import apply_box
from fedseg.imaging.inverse import resampled_origin, to_original_grid, uncrop
from fedseg.imaging.orient import to_canonical
from fedseg.imaging.resample import reference_grid, resample_to_spacing

RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
SAGITTAL = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def forward(original: sitk.Image, spacing: tuple[float, float, float], box: tuple[int, ...]) -> tuple[np.ndarray, CaseGeometry]:
    """Do what the pipeline does to a label: canonical, nearest resampling, crop; return array and geometry."""
    canon = to_canonical(original)
    ref = reference_grid(canon, spacing)
    res = sitk.GetArrayFromImage(resample_to_spacing(canon, None, interpolator="nearest", reference=ref))
    z0, _, y0, _, x0, _ = box
    geometry = CaseGeometry(
        spacing=ref.GetSpacing(), origin=ref.TransformIndexToPhysicalPoint((x0, y0, z0)),
        direction=ref.GetDirection(), crop_box=tuple(box), resampled_size=ref.GetSize(),
        original_size=original.GetSize(), original_spacing=original.GetSpacing(),
        original_origin=original.GetOrigin(), original_direction=original.GetDirection(),
    )
    return np.ascontiguousarray(apply_box(res, box)), geometry


def blob_image(size_xyz, spacing, direction, origin=(12.0, -30.0, 7.5), seed=0) -> sitk.Image:
    """Three labelled balls of 5-8 mm radius (in physical units, whatever the spacing)."""
    rng = np.random.default_rng(seed)
    arr = np.zeros(size_xyz[::-1], dtype=np.uint8)
    zz, yy, xx = (a * s for a, s in zip(np.indices(arr.shape), spacing[::-1]))
    extent = [n * s for n, s in zip(arr.shape, spacing[::-1])]
    for _ in range(3):
        c = [rng.uniform(0.35, 0.65) * e for e in extent]
        r = rng.uniform(5.0, 8.0)
        arr[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < r * r] = rng.integers(1, 4)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    img.SetOrigin(origin)
    return img


@pytest.mark.parametrize("direction", [RAS, SAGITTAL, (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)])
def test_exact_round_trip_when_spacing_is_kept(direction) -> None:
    original = blob_image((20, 18, 12), (1.0, 1.0, 1.0), direction)
    crop_any = sitk.GetArrayFromImage(to_canonical(original))
    nz = np.nonzero(crop_any)
    box = tuple(int(v) for a in nz for v in (a.min(), a.max() + 1))
    stored, geometry = forward(original, (1.0, 1.0, 1.0), box)
    back = to_original_grid(stored, geometry)
    assert back.GetSize() == original.GetSize()
    assert np.allclose(back.GetOrigin(), original.GetOrigin())
    assert np.allclose(back.GetSpacing(), original.GetSpacing())
    assert np.allclose(back.GetDirection(), original.GetDirection())
    assert back.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(original))


def test_anisotropic_round_trip_is_close() -> None:
    original = blob_image((40, 40, 12), (0.9, 0.9, 3.0), RAS)
    size = sitk.GetArrayFromImage(original).shape
    stored, geometry = forward(original, (1.0, 1.0, 1.0), (0, 36, 0, 36, 0, 36))
    assert stored.shape == (36, 36, 36) and size == (12, 40, 40)
    back = sitk.GetArrayFromImage(to_original_grid(stored, geometry)) > 0
    truth = sitk.GetArrayFromImage(original) > 0
    dice = 2 * np.sum(back & truth) / (back.sum() + truth.sum())
    assert dice > 0.97


def test_linear_interpolation_and_fill() -> None:
    original = blob_image((10, 10, 10), (2.0, 2.0, 2.0), RAS)
    stored, geometry = forward(original, (1.0, 1.0, 1.0), (2, 18, 2, 18, 2, 18))
    prob = np.full(stored.shape, 0.75, dtype=np.float32)
    back = to_original_grid(prob, geometry, interpolator="linear", fill=0.0)
    arr = sitk.GetArrayFromImage(back)
    assert back.GetPixelID() == sitk.sitkFloat32
    assert np.isclose(arr[5, 5, 5], 0.75)  # inside the crop box
    assert arr[0, 0, 0] == 0.0  # outside the crop box: the fill value


def test_uncrop_and_origin() -> None:
    geometry = CaseGeometry(
        spacing=(2.0, 2.0, 2.0), origin=(4.0, 6.0, 2.0), direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0),
        crop_box=(1, 3, 3, 5, 2, 4), resampled_size=(6, 5, 4), original_size=(6, 5, 4),
        original_spacing=(2.0, 2.0, 2.0), original_origin=(0.0, 0.0, 0.0),
        original_direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0),
    )
    assert resampled_origin(geometry) == (0.0, 0.0, 0.0)
    full = uncrop(np.ones((2, 2, 2), dtype=np.uint8), geometry, fill=0)
    assert full.shape == (4, 5, 6) and full.sum() == 8 and full[1:3, 3:5, 2:4].all()
    back = sitk.GetArrayFromImage(to_original_grid(np.ones((2, 2, 2), dtype=bool), geometry))
    assert np.array_equal(back, full)
    with pytest.raises(ImageError, match=r"stored grid's shape \(2, 2, 2\)"):
        to_original_grid(np.ones((3, 2, 2)), geometry)
    with pytest.raises(ImageError, match="interpolator"):
        to_original_grid(np.ones((2, 2, 2)), geometry, interpolator="cubic")
