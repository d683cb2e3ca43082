"""Turn region probabilities (WT, TC, ET) back into one BraTS label map.

Internal labels (DESIGN.md §4.1): 0 background, 1 NCR/NETC, 2 ED/SNFH, 3 ET; regions WT = {1, 2, 3},
TC = {1, 3}, ET = {3}. The network predicts the three regions independently (sigmoid each), so the
nesting ET ⊂ TC ⊂ WT is imposed here: WT = p_WT > t_WT; TC = WT & p_TC > t_TC; ET = TC & p_ET > t_ET
(the hierarchy used by the BraTS region-based nnU-Net, Isensee et al., BrainLes 2020). A threshold is a
strict ">" so a probability of exactly 0.5 is background.

Optional small-component removal, applied in the order WT, TC, ET with 26-connectivity: a WT component
smaller than ``min_component_voxels`` becomes background; a TC component that small falls back to
oedema (label 2, it stays inside WT); an ET component that small falls back to necrosis (label 1, it
stays inside TC). Removing a region never breaks the nesting.
"""

from __future__ import annotations

import numpy as np

from fedseg.labels import LabelConvention, from_internal, regions_to_label

__all__ = ["label_to_convention", "probabilities_to_label", "remove_small_components"]


def remove_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """Return ``mask`` without its 26-connected components of fewer than ``min_voxels`` voxels."""
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if min_voxels <= 1 or not mask.any():
        return mask.copy()
    labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def probabilities_to_label(
    probs: np.ndarray,
    thresholds: tuple[float, float, float] = (0.5, 0.5, 0.5),
    *,
    min_component_voxels: int = 0,
) -> np.ndarray:
    """Return the internal uint8 label map (0/1/2/3) of region probabilities ``probs`` [3, Z, Y, X]."""
    probs = np.asarray(probs)
    if probs.ndim < 2 or probs.shape[0] != 3:
        raise ValueError(f"probabilities must have shape [3 (WT, TC, ET), ...], got {probs.shape}")
    if len(thresholds) != 3 or not all(0.0 <= float(t) <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds must be three values in [0, 1], got {thresholds}")
    if min_component_voxels < 0:
        raise ValueError(f"min_component_voxels must be >= 0, got {min_component_voxels}")
    wt = probs[0] > thresholds[0]
    if min_component_voxels > 1:
        wt = remove_small_components(wt, min_component_voxels)
    tc = wt & (probs[1] > thresholds[1])
    if min_component_voxels > 1:
        tc = remove_small_components(tc, min_component_voxels)
    et = tc & (probs[2] > thresholds[2])
    if min_component_voxels > 1:
        et = remove_small_components(et, min_component_voxels)
    return regions_to_label(wt, tc, et)


def label_to_convention(label_internal: np.ndarray, convention: LabelConvention | str) -> np.ndarray:
    """Return a uint8 copy of an internal label map numbered as ``convention`` wants.

    ``brats2021`` writes ET as 4, ``brats2023`` and ``brats2024-post`` as 3 (the internal numbering; a
    resection cavity is never predicted), ``nnunet-brats`` as nnU-Net's BraTS conversion (1 ED, 2 NCR,
    3 ET). ``auto`` is not a convention one can write (ValueError, as for values outside 0..3).
    """
    return from_internal(np.asarray(label_internal), LabelConvention(convention))
