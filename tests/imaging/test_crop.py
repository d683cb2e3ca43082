"""Brain bounding box: half-open, margin, clipped; no foreground voxel outside."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.errors import ImageError
from fedseg.imaging.crop import apply_box, bounding_box


def test_box_by_hand() -> None:
    mask = np.zeros((10, 12, 14), dtype=bool)
    mask[3, 4, 5] = mask[6, 8, 9] = True
    assert bounding_box(mask, 0) == (3, 7, 4, 9, 5, 10)
    assert bounding_box(mask, 2) == (1, 9, 2, 11, 3, 12)
    # Clipped at the array's edges.
    assert bounding_box(mask, 5) == (0, 10, 0, 12, 0, 14)


def test_apply_box_keeps_channels() -> None:
    arr = np.arange(2 * 4 * 5 * 6).reshape(2, 4, 5, 6)
    out = apply_box(arr, (1, 3, 0, 2, 4, 6))
    assert out.shape == (2, 2, 2, 2)
    assert out[1, 0, 1, 0] == arr[1, 1, 1, 4]


def test_empty_mask_and_bad_input_raise() -> None:
    with pytest.raises(ImageError, match="empty"):
        bounding_box(np.zeros((3, 3, 3), bool), 1)
    with pytest.raises(ImageError, match="3D"):
        bounding_box(np.ones((3, 3), bool), 1)
    with pytest.raises(ImageError, match="margin"):
        bounding_box(np.ones((3, 3, 3), bool), -1)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 4))
def test_no_foreground_voxel_is_cut(seed: int, margin: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((7, 9, 11)) > 0.97
    mask[rng.integers(7), rng.integers(9), rng.integers(11)] = True
    box = bounding_box(mask, margin)
    assert apply_box(mask, box).sum() == mask.sum()
    z0, z1, y0, y1, x0, x1 = box
    assert 0 <= z0 < z1 <= 7 and 0 <= y0 < y1 <= 9 and 0 <= x0 < x1 <= 11
    # Tight: without margin each face touches a foreground voxel.
    tight = bounding_box(mask, 0)
    cropped = apply_box(mask, tight)
    for axis in range(3):
        assert cropped.take(0, axis=axis).any() and cropped.take(-1, axis=axis).any()
