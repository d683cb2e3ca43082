"""Lesion building blocks: 26-connected components, optimal one-to-one matching, 18-connected dilation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from fedseg.errors import MetricsError
from fedseg.metrics.lesion_match import components, dilate_18, match_one_to_one, merge_by_dilation, pair_dice


def test_corner_touching_voxels_are_one_lesion() -> None:
    m = np.zeros((4, 4, 4), bool)
    m[1, 1, 1] = m[2, 2, 2] = True  # share only a corner: one lesion under 26-connectivity
    m[0, 3, 3] = True
    assert components(m)[1] == 2
    with pytest.raises(MetricsError, match="3D"):
        components(np.zeros((4, 4), bool))


def test_matching_maximises_the_summed_dice() -> None:
    # ref 1 overlaps pred 1 (Dice .6) and pred 2 (Dice .5); ref 2 overlaps only pred 1 (Dice .45).
    # Greedy would pair (1, 1) and leave ref 2 unmatched (sum .6); the optimum is (1, 2) + (2, 1) = .95.
    ref_ids, pred_ids, dice = np.array([1, 1, 2]), np.array([1, 2, 1]), np.array([0.6, 0.5, 0.45])
    assert match_one_to_one(ref_ids, pred_ids, dice, 2, 2) == [(1, 2, 0.5), (2, 1, 0.45)]
    assert match_one_to_one(ref_ids[:0], pred_ids[:0], dice[:0], 2, 2) == []


def test_pair_dice_counts_overlaps() -> None:
    ref = np.zeros((1, 1, 6), np.int32)
    pred = np.zeros((1, 1, 6), np.int32)
    ref[0, 0, :4] = 1  # 4 voxels
    pred[0, 0, 2:6] = 1  # 4 voxels, 2 shared: Dice 2*2 / 8 = .5
    r, p, d = pair_dice(ref, 1, pred, 1)
    assert (r.tolist(), p.tolist(), d.tolist()) == ([1], [1], [0.5])


def test_merge_by_dilation_joins_close_lesions() -> None:
    ref = np.zeros((5, 5, 20), bool)
    ref[2, 2, 2] = ref[2, 2, 8] = True  # 5-voxel gap: each grows by 3 -> they meet
    ref[2, 2, 17] = True  # 8-voxel gap to the second: stays apart
    merged, dilated, n = merge_by_dilation(ref, 3)
    assert n == 2 and merged[2, 2, 2] == merged[2, 2, 8] != merged[2, 2, 17]
    assert not (merged.astype(bool) & ~ref).any() and (dilated.astype(bool) >= ref).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shape=st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 7)))
def test_dilate_18_equals_scipy(seed: int, shape: tuple[int, int, int]) -> None:
    m = np.random.default_rng(seed).random(shape) > 0.85
    expected = ndimage.binary_dilation(m, structure=ndimage.generate_binary_structure(3, 2))
    assert (dilate_18(m) == expected).all()
