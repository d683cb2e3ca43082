"""Region probabilities -> nested BraTS labels, small-component removal, label conventions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedseg.inference.regions import label_to_convention, probabilities_to_label, remove_small_components


def test_hand_checked_voxels() -> None:
    # columns: (p_WT, p_TC, p_ET) per voxel and the expected internal label
    cases = [
        ((0.1, 0.9, 0.9), 0),  # no WT -> background even though TC/ET are confident
        ((0.9, 0.1, 0.9), 2),  # WT only (ET ignored outside TC) -> oedema
        ((0.9, 0.9, 0.1), 1),  # WT and TC, no ET -> necrosis
        ((0.9, 0.9, 0.9), 3),  # all three -> enhancing
        ((0.5, 0.9, 0.9), 0),  # threshold is strict: exactly 0.5 is not tumour
        ((0.51, 0.51, 0.51), 3),
    ]
    probs = np.array([c[0] for c in cases], dtype=np.float32).T.reshape(3, 1, 1, len(cases))
    label = probabilities_to_label(probs)
    assert label.dtype == np.uint8
    assert label.ravel().tolist() == [c[1] for c in cases]


def test_thresholds_are_per_region() -> None:
    probs = np.array([0.6, 0.6, 0.6], dtype=np.float32).reshape(3, 1, 1, 1)
    assert probabilities_to_label(probs, (0.5, 0.5, 0.7)).item() == 1
    assert probabilities_to_label(probs, (0.5, 0.7, 0.5)).item() == 2
    assert probabilities_to_label(probs, (0.7, 0.5, 0.5)).item() == 0


@settings(max_examples=30, deadline=None)
@given(
    probs=arrays(np.float32, (3, 4, 5, 6), elements=st.floats(0, 1, width=32)),
    min_voxels=st.integers(0, 6),
)
def test_labels_are_nested_whatever_the_probabilities(probs, min_voxels) -> None:
    label = probabilities_to_label(probs, min_component_voxels=min_voxels)
    wt, tc, et = label > 0, np.isin(label, (1, 3)), label == 3
    assert set(np.unique(label).tolist()) <= {0, 1, 2, 3}
    assert not (et & ~tc).any() and not (tc & ~wt).any()
    # every predicted WT voxel really had p_WT > 0.5 (removal never adds tumour)
    assert (probs[0][wt] > 0.5).all()


def test_small_components_fall_back_one_level() -> None:
    probs = np.zeros((3, 10, 10, 10), dtype=np.float32)
    probs[0, 1:6, 1:6, 1:6] = 0.9  # WT blob of 125 voxels
    probs[1, 2:5, 2:5, 2:5] = 0.9  # TC blob of 27 voxels inside it
    probs[2, 3, 3, 3] = 0.9  # single ET voxel inside TC
    probs[0, 8, 8, 8] = 0.9  # isolated one-voxel WT far away
    full = probabilities_to_label(probs)
    assert (full == 3).sum() == 1 and full[8, 8, 8] == 2
    cleaned = probabilities_to_label(probs, min_component_voxels=2)
    assert cleaned[8, 8, 8] == 0  # tiny WT -> background
    assert cleaned[3, 3, 3] == 1  # tiny ET -> stays tumour core (necrosis)
    assert (cleaned == 1).sum() == 27 and (cleaned == 2).sum() == 125 - 27
    cleaned = probabilities_to_label(probs, min_component_voxels=30)
    assert (cleaned == 1).sum() == 0 and (cleaned == 2).sum() == 125  # TC of 27 -> oedema


def test_remove_small_components_uses_26_connectivity() -> None:
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True  # corner-touching: one component of 2 under 26-connectivity
    mask[3, 3, 0] = True
    kept = remove_small_components(mask, 2)
    assert kept[0, 0, 0] and kept[1, 1, 1] and not kept[3, 3, 0]
    assert remove_small_components(mask, 0).sum() == 3


def test_conventions() -> None:
    label = np.array([0, 1, 2, 3], dtype=np.uint8)
    assert label_to_convention(label, "brats2021").tolist() == [0, 1, 2, 4]
    assert label_to_convention(label, "brats2023").tolist() == [0, 1, 2, 3]
    assert label_to_convention(label, "nnunet-brats").tolist() == [0, 2, 1, 3]
    assert label.tolist() == [0, 1, 2, 3]  # input untouched
    with pytest.raises(ValueError, match="auto"):
        label_to_convention(label, "auto")
    with pytest.raises(ValueError, match="brats2019"):
        label_to_convention(label, "brats2019")
    with pytest.raises(ValueError, match="only 0, 1, 2, 3"):
        label_to_convention(np.array([4], np.uint8), "brats2021")


def test_bad_probability_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \[3"):
        probabilities_to_label(np.zeros((2, 4, 4, 4), np.float32))
