"""Z-score inside the brain: mean 0, std 1 (ddof=0) inside, exactly 0 outside; edge cases decided."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.errors import ImageError
from fedseg.imaging.normalize import zscore_in_mask


def test_by_hand() -> None:
    arr = np.array([[[1.0, 3.0, 100.0]]])
    mask = np.array([[[1, 1, 0]]], dtype=np.uint8)
    out = zscore_in_mask(arr, mask)
    assert out.dtype == np.float32
    assert out.tolist() == [[[-1.0, 1.0, 0.0]]]  # mean 2, population std 1


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 1e4), st.floats(-1e3, 1e3))
def test_mean_zero_std_one_inside_zero_outside(seed: int, scale: float, offset: float) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.normal(offset, scale, (6, 7, 8))
    mask = rng.random((6, 7, 8)) > 0.4
    mask[0, 0, :2] = True
    out = zscore_in_mask(arr, mask)
    assert abs(float(out[mask].mean())) < 1e-4
    assert abs(float(out[mask].std()) - 1.0) < 1e-4
    assert np.all(out[~mask] == 0.0)


def test_constant_brain_gives_zeros() -> None:
    arr = np.full((3, 3, 3), 7.0)
    assert np.all(zscore_in_mask(arr, np.ones((3, 3, 3), bool)) == 0.0)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ImageError, match="empty"):
        zscore_in_mask(np.ones((2, 2, 2)), np.zeros((2, 2, 2), bool))
    with pytest.raises(ImageError, match="shape"):
        zscore_in_mask(np.ones((2, 2, 2)), np.ones((2, 2, 3), bool))
    arr = np.ones((2, 2, 2))
    arr[0, 0, 0] = np.nan
    with pytest.raises(ImageError, match="non-finite"):
        zscore_in_mask(arr, np.ones((2, 2, 2), bool))
    # NaN outside the mask does not matter: it becomes 0.
    mask = np.ones((2, 2, 2), bool)
    mask[0, 0, 0] = False
    arr[1, 1, 1] = 3.0
    assert zscore_in_mask(arr, mask)[0, 0, 0] == 0.0
