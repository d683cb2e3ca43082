"""HD95: hand-worked geometry, empty conventions, properties, and agreement with medpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from fedseg.errors import MetricsError
from fedseg.metrics import EmptyPolicy, bounding_box, dice, hd95, image_diagonal_mm


def _box(shape, lo, hi) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def test_identical_is_zero() -> None:
    a = _box((10, 10, 10), (2, 3, 1), (7, 8, 6))
    assert hd95(a, a, (1.0, 2.0, 3.0)) == 0.0


@pytest.mark.parametrize(
    ("axis", "shift", "spacing"),
    [(0, 3, (2.5, 0.7, 1.1)), (1, 2, (2.5, 0.7, 1.1)), (2, 4, (1.0, 1.0, 0.3))],
)
def test_shifted_plates_anisotropic(axis: int, shift: int, spacing: tuple[float, float, float]) -> None:
    # A one-voxel-thick 8x8 plate, moved `shift` voxels across its thickness: every voxel is surface and
    # its nearest partner lies straight across, so every pooled distance (hence HD95) is shift * spacing.
    lo, hi = [2, 2, 2], [10, 10, 10]
    hi[axis] = lo[axis] + 1
    a = _box((16, 16, 16), lo, hi)
    b = np.roll(a, shift, axis=axis)
    assert hd95(a, b, spacing) == pytest.approx(shift * spacing[axis], abs=1e-12)


def test_shifted_cube_anisotropic() -> None:
    # 2x2x2 cube (all voxels are surface) moved 3 voxels along y at sy = 0.7 mm: half the pooled
    # distances are 3 * 0.7 (far layer), half 2 * 0.7 (near layer); the 95th percentile is 2.1 mm.
    a = _box((8, 12, 8), (3, 1, 3), (5, 3, 5))
    b = np.roll(a, 3, axis=1)
    assert hd95(a, b, (2.0, 0.7, 1.3)) == pytest.approx(2.1, abs=1e-12)


def test_one_voxel_each_diagonal_offset() -> None:
    a = _box((9, 9, 9), (1, 1, 1), (2, 2, 2))
    b = _box((9, 9, 9), (4, 5, 7), (5, 6, 8))
    assert hd95(a, b, (2.0, 1.0, 0.5)) == pytest.approx(math.sqrt((3 * 2.0) ** 2 + (4 * 1.0) ** 2 + (6 * 0.5) ** 2))


def test_empty_conventions_and_diagonal() -> None:
    shape = (155, 240, 240)
    assert image_diagonal_mm(shape, (1, 1, 1)) == pytest.approx(373.13, abs=0.005)
    z = np.zeros(shape, bool)
    a = z.copy()
    a[70:80, 100:110, 100:110] = True
    assert hd95(z, z, (1, 1, 1)) == 0.0
    assert hd95(a, z, (1, 1, 1)) == pytest.approx(373.13, abs=0.005)
    assert hd95(z, a, (2, 1, 1)) == pytest.approx(image_diagonal_mm(shape, (2, 1, 1)))
    for p, r in ((z, z), (a, z), (z, a)):
        assert math.isnan(hd95(p, r, (1, 1, 1), empty=EmptyPolicy.NAN))


def test_bad_spacing_and_shape() -> None:
    a = np.ones((2, 2, 2), bool)
    with pytest.raises(MetricsError, match="3 positive finite spacings"):
        hd95(a, a, (1.0, 1.0))
    with pytest.raises(MetricsError, match="positive"):
        hd95(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(MetricsError, match="one shape"):
        hd95(a, np.ones((2, 2, 3), bool), (1, 1, 1))


def test_bounding_box() -> None:
    m = _box((5, 6, 7), (1, 2, 3), (2, 4, 7))
    assert bounding_box(m) == (slice(1, 2), slice(2, 4), slice(3, 7))
    assert bounding_box(m, margin=1) == (slice(0, 3), slice(1, 5), slice(2, 7))
    assert bounding_box(np.zeros((3, 3), bool)) is None


small = arrays(bool, st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7)))
spacings = st.tuples(*(st.floats(0.25, 4.0) for _ in range(3)))


@settings(max_examples=30, deadline=None)
@given(st.data(), spacings)
def test_hd95_properties(data: st.DataObject, spacing: tuple[float, float, float]) -> None:
    a = data.draw(small)
    b = data.draw(arrays(bool, a.shape))
    h = hd95(a, b, spacing)
    assert h >= 0.0
    assert h == hd95(b, a, spacing)
    if a.any():
        assert hd95(a, a, spacing) == 0.0
    pads = data.draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=3, max_size=3))
    if a.any() and b.any():  # padding changes the one-empty diagonal, by design
        assert hd95(np.pad(a, pads), np.pad(b, pads), spacing) == pytest.approx(h, abs=1e-9)


# ---- agreement with medpy (same pooled definition): Dice exactly, HD95 to 1e-6 mm ----


def _blob(rng: np.random.Generator, shape, sigma: float, level: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.random(shape), sigma) > level


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_medpy_random(seed: int) -> None:
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(8, 24, size=3))
    a = rng.random(shape) > rng.uniform(0.5, 0.95)
    b = rng.random(shape) > rng.uniform(0.5, 0.95)
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, size=3))
    assert dice(a, b) == pytest.approx(medpy.dc(a, b), abs=1e-12)
    assert abs(hd95(a, b, spacing) - medpy.hd95(a, b, voxelspacing=spacing)) <= 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_medpy_realistic(seed: int) -> None:
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(100 + seed)
    shape = (48, 64, 56)
    ref = np.zeros(shape, bool)
    ref[8:40, 12:52, 10:46] = _blob(rng, (32, 40, 36), 4.0, 0.5)
    # a prediction that over/under-segments smoothly and misses/adds small islands
    pred = ndimage.binary_dilation(ref, iterations=1) if seed % 2 else ndimage.binary_erosion(ref)
    pred ^= _blob(rng, shape, 2.0, 0.56) & (rng.random(shape) > 0.7)
    spacing = ((1.0, 1.0, 1.0), (3.0, 0.9, 0.9), (1.2, 0.5, 2.0))[seed]
    assert dice(pred, ref) == pytest.approx(medpy.dc(pred, ref), abs=1e-12)
    assert abs(hd95(pred, ref, spacing) - medpy.hd95(pred, ref, voxelspacing=spacing)) <= 1e-6


def test_agrees_with_medpy_when_touching_the_border() -> None:
    medpy = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(7)
    a = _blob(rng, (12, 14, 10), 1.5, 0.5)
    b = _blob(rng, (12, 14, 10), 1.5, 0.5)
    a[0, :, :] = True  # the crop is clipped at the array edge; erosion must still treat outside as background
    assert abs(hd95(a, b, (0.8, 1.7, 2.2)) - medpy.hd95(a, b, voxelspacing=(0.8, 1.7, 2.2))) <= 1e-6


@pytest.mark.parametrize("seed", range(3))
def test_surface_distances_equal_an_edt_oracle(seed: int) -> None:
    from fedseg.metrics import surface_distances

    rng = np.random.default_rng(50 + seed)
    a, b = _blob(rng, (14, 12, 16), 1.2, 0.5), _blob(rng, (14, 12, 16), 1.2, 0.52)
    spacing = (1.7, 0.4, 0.9)
    st3 = ndimage.generate_binary_structure(3, 1)
    sa, sb = a ^ ndimage.binary_erosion(a, st3), b ^ ndimage.binary_erosion(b, st3)
    oracle_ab = ndimage.distance_transform_edt(~sb, sampling=spacing)[sa]
    oracle_ba = ndimage.distance_transform_edt(~sa, sampling=spacing)[sb]
    d_ab, d_ba = surface_distances(a, b, spacing)
    np.testing.assert_allclose(np.sort(d_ab), np.sort(oracle_ab), atol=1e-9)
    np.testing.assert_allclose(np.sort(d_ba), np.sort(oracle_ba), atol=1e-9)
