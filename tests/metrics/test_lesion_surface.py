"""The BraTS 2023 reference HD95 on voxel corners: surfaces and hand-worked distances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedseg.metrics.lesion_surface import corner_surface, robust_hd95


def test_one_voxel_has_eight_surface_corners() -> None:
    m = np.zeros((3, 3, 3), bool)
    m[1, 1, 1] = True
    s = corner_surface(m)
    assert s.shape == (4, 4, 4) and int(s.sum()) == 8 and s[1:3, 1:3, 1:3].all()


def test_shifted_cube_and_empty_masks() -> None:
    ref = np.zeros((8, 8, 12), bool)
    ref[2:6, 2:6, 2:6] = True
    pred = np.roll(ref, 1, axis=2)  # shifted by one voxel along x
    # corners: each 4^3 cube has 98 surface corners; the far face (25 corners) of each is 1 voxel
    # from the other surface and every other corner at most 1 away -> 95th percentile 1
    assert robust_hd95(pred, ref, (1.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert robust_hd95(pred, ref, (1.0, 1.0, 2.0)) == pytest.approx(2.0)  # x spacing 2 mm
    assert robust_hd95(ref, ref, (1.0, 1.0, 1.0)) == 0.0
    assert math.isinf(robust_hd95(ref, np.zeros_like(ref), (1.0, 1.0, 1.0)))
