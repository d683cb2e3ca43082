"""Dice, sensitivity, specificity and volumes: hand-worked cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedseg.errors import MetricsError
from fedseg.metrics import EmptyPolicy, dice, sensitivity, specificity, volume_ml


def _cube(shape=(6, 6, 6), sl=(slice(1, 4),) * 3) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[sl] = True
    return m


def test_identical_and_disjoint() -> None:
    a = _cube()
    b = _cube(sl=(slice(4, 6),) * 3)
    assert dice(a, a) == 1.0
    assert dice(a, b) == 0.0
    assert sensitivity(a, b) == 0.0
    # 216 voxels, 27 in a, 8 in b: TN = 216 - 27 - 8 = 181, FP = 27 (a is the prediction)
    assert specificity(a, b) == pytest.approx(181 / (181 + 27))


def test_partial_overlap_by_hand() -> None:
    pred = np.array([1, 1, 1, 0, 0, 0], bool)
    ref = np.array([0, 1, 1, 1, 1, 0], bool)
    assert dice(pred, ref) == pytest.approx(2 * 2 / (3 + 4))
    assert sensitivity(pred, ref) == pytest.approx(2 / 4)
    assert specificity(pred, ref) == pytest.approx(1 / 2)  # TN = 1 (last voxel), FP = 1 (first)


def test_one_voxel() -> None:
    a = np.zeros((3, 3, 3), bool)
    a[1, 1, 1] = True
    assert dice(a, a) == 1.0
    b = np.zeros_like(a)
    b[0, 0, 0] = True
    assert dice(a, b) == 0.0


def test_empty_conventions() -> None:
    z = np.zeros((4, 4, 4), bool)
    a = _cube((4, 4, 4), (slice(0, 2),) * 3)
    assert dice(z, z) == 1.0
    assert math.isnan(dice(z, z, empty=EmptyPolicy.NAN))
    for policy in EmptyPolicy:
        assert dice(a, z, empty=policy) == 0.0
        assert dice(z, a, empty=policy) == 0.0
    assert sensitivity(a, z) == 1.0 and math.isnan(sensitivity(a, z, empty=EmptyPolicy.NAN))
    full = np.ones((2, 2), bool)
    assert specificity(full, full) == 1.0 and math.isnan(specificity(full, full, empty="nan"))


def test_non_bool_masks_use_nonzero_and_shapes_must_match() -> None:
    assert dice(np.array([0, 2, 5]), np.array([0, 1, 0])) == pytest.approx(2 / 3)
    with pytest.raises(MetricsError, match="one shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_volume_ml() -> None:
    assert volume_ml(1000, (1.0, 1.0, 1.0)) == 1.0
    assert volume_ml(10, (2.0, 0.5, 3.0)) == pytest.approx(0.03)


masks = arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_dice_symmetric_and_bounded(data: st.DataObject) -> None:
    a = data.draw(masks)
    b = data.draw(arrays(bool, a.shape))
    d = dice(a, b)
    assert 0.0 <= d <= 1.0
    assert d == dice(b, a)
