"""All metrics of one case: per BraTS region, Dice, HD95, sensitivity, specificity and volumes.

The label maps are cropped once to the bounding box of the union of their tumour voxels plus one
voxel (every region is a subset of WT, so no region reaches outside it; see
:mod:`fedseg.metrics.surface` for why the crop leaves HD95 unchanged). True negatives and the
one-empty HD95 diagonal use the full image, so the numbers equal those computed on the full arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedseg.errors import MetricsError
from fedseg.labels import REGIONS, LabelConvention, check_labels, region_masks
from fedseg.metrics.empty import EmptyPolicy
from fedseg.metrics.overlap import confusion, dice_from, ratio_from, volume_ml
from fedseg.metrics.surface import _check_spacing, bounding_box, hd95_cropped

__all__ = ["METRICS", "case_metrics"]

METRICS: tuple[str, ...] = ("dice", "hd95", "sensitivity", "specificity", "pred_ml", "ref_ml")


def case_metrics(
    pred_label: np.ndarray,
    ref_label: np.ndarray,
    spacing: Sequence[float],
    *,
    convention: LabelConvention = LabelConvention.AUTO,
    ref_convention: LabelConvention | None = None,
    empty: EmptyPolicy = EmptyPolicy.BRATS,
) -> dict[str, dict[str, float]]:
    """Return ``{"WT"|"TC"|"ET": {"dice", "hd95", "sensitivity", "specificity", "pred_ml", "ref_ml"}}``.

    ``spacing`` is in array axis order ((sz, sy, sx) for fedseg's [Z, Y, X] arrays); HD95 is in mm,
    volumes in ml. With ``convention=AUTO`` the convention of each label map is detected on its own
    (a fedseg prediction with ET = 3 can be scored against a BraTS 2021 reference with ET = 4);
    a forced convention applies to both, unless ``ref_convention`` gives the reference its own (a
    dataset-level decision per side, see :func:`fedseg.labels.decide_convention`). Empty regions follow ``empty`` (see
    :mod:`fedseg.metrics.empty`). Raises MetricsError for unexpected or non-integer label values
    (saying whether the prediction or the reference holds them) or mismatched shapes.
    """
    pred_label, ref_label = np.asarray(pred_label), np.asarray(ref_label)
    if pred_label.shape != ref_label.shape:
        raise MetricsError(f"prediction and reference must have one shape, found {pred_label.shape} and {ref_label.shape}")
    sp = _check_spacing(spacing, pred_label.ndim)
    conv_p = _checked(pred_label, convention, "prediction")
    conv_r = _checked(ref_label, convention if ref_convention is None else ref_convention, "reference")

    box = bounding_box((pred_label != 0) | (ref_label != 0), margin=1)
    if box is None:  # no tumour in either: every region is empty in both
        box = tuple(slice(0, 0) for _ in pred_label.shape)
    pred_regions = region_masks(pred_label[box], conv_p)
    ref_regions = region_masks(ref_label[box], conv_r)

    total = int(pred_label.size)
    out: dict[str, dict[str, float]] = {}
    for name in REGIONS:
        p, r = pred_regions[name], ref_regions[name]
        c = confusion(p, r, total=total)
        out[name] = {
            "dice": dice_from(c, empty),
            "hd95": hd95_cropped(p, r, sp, full_shape=pred_label.shape, empty=empty),
            "sensitivity": ratio_from(c.tp, c.ref, empty),
            "specificity": ratio_from(c.tn, c.tn + c.fp, empty),
            "pred_ml": volume_ml(c.pred, sp),
            "ref_ml": volume_ml(c.ref, sp),
        }
    return out


def _checked(label: np.ndarray, convention: LabelConvention, what: str) -> LabelConvention:
    try:
        return check_labels(label, convention)
    except MetricsError as exc:
        raise MetricsError(f"{what}: {exc}") from None
