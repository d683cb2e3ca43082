"""BraTS 2023+ lesion-wise Dice and HD95 per region, with the lesion counts behind them.

Two definitions (:class:`LesionDefinition`, ``--lesion-definition``), each as its reference computes it.

``brats`` (default) -- the official ``brats-evaluation`` 0.0.10 (PyPI) on ``panoptica`` 2.1.7,
glioma configuration (``brats_evaluation/configs/config_gli.yaml``), as read in
``panoptica_pipeline.py``, ``instance_matcher.py``, ``instance_evaluator.py``,
``panoptica_result.py``, ``utils/edge_case_handling.py`` and ``brats_evaluation/metrics_parser.py``:
    lesions are 26-connected components of each region, no dilation, no minimum size; predicted and
    reference lesions are paired one-to-one by maximum bipartite matching on Dice (see
    :mod:`fedseg.metrics.lesion_match`). ``dice`` = mean Dice over the matched pairs (``sq_dsc``),
    ``hd95`` = mean HD95 over the matched pairs (``sq_hd95``; pooled 95th percentile, as
    :mod:`fedseg.metrics.surface`). Missed and false-positive lesions enter only the counts. With no
    matched pair: no lesion on either side -> NaN for both (``no_instances_result: NAN``), otherwise
    Dice 0 and HD95 infinity (``ZERO`` / ``INF``). The 373 substitute of ``metrics_parser.py``
    applies only to the GLOBAL HD95 (and to missing cases), never to ``lesionwise_hd95_mean``, so a
    dataset mean over cases (NaN skipped, as pandas does) is infinite when any case has lesions but
    no match. JSON has no infinity: it is written as null, and the counts tell it from NaN.
    Label 4 is the resection cavity in that configuration (BraTS 2024 post-treatment) and belongs
    to no region there; fedseg's regions come from :mod:`fedseg.labels`, where 4 is the
    enhancing tumour of BraTS 2021 label maps.

``brats2023`` -- the BraTS 2023 reference scripts (rachitsaluja/BraTS-2023-Metrics at 43c9052,
``metrics.py``, ``get_LesionWiseScores`` / ``get_LesionWiseResults``, glioma settings
``dilation_factor = 3``, ``lesion_volume_thresh = 50``):
    reference lesions closer than the dilation are merged (:func:`~fedseg.metrics.lesion_match.
    merge_by_dilation`); a predicted component is a hit for every reference lesion whose dilation it
    touches, and the lesion is scored against the union of its hits; reference lesions of at most
    50 mm^3 are dropped from the score and the counts (hits on them are still not false positives).
    ``dice`` = sum of lesion Dice / (n_GT + n_FP), ``hd95`` = (sum of lesion HD95 + 374 n_FP) /
    (n_GT + n_FP) with 374 for a missed lesion; 0/0 gives Dice 1 and HD95 0. HD95 as
    :mod:`fedseg.metrics.lesion_surface` (one documented deviation there).

Spacing (``spacing`` is in array axis order, (sz, sy, sx) for fedseg's [Z, Y, X] arrays):
    ``brats2023`` reads NIfTI with nibabel, whose array axes and zooms agree: physical millimetres.
    ``brats``: panoptica reads a NIfTI file with SimpleITK, takes the array [Z, Y, X] from
    ``GetArrayFromImage`` but the spacing (sx, sy, sz) from ``GetSpacing`` (``check_sitk_image.py``),
    so the x spacing is applied to the slice axis. We reproduce that: per-lesion HD95 uses the
    REVERSED array-order spacing. On isotropic data (BraTS: 1 mm) nothing changes; on anisotropic
    data the official lesion-wise HD95 (and hence ours under ``brats``) is not in physical mm --
    use the legacy HD95, which is, or resample to isotropic spacing first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum

import numpy as np
from scipy import ndimage

from fedseg.errors import MetricsError
from fedseg.labels import REGIONS, LabelConvention, label_to_regions
from fedseg.metrics.lesion_match import components, match_one_to_one, merge_by_dilation, pair_dice, touching
from fedseg.metrics.lesion_surface import robust_hd95
from fedseg.metrics.summary import describe
from fedseg.metrics.surface import _check_spacing, bounding_box, hd95_cropped

__all__ = [
    "COUNTS",
    "LESION_METRICS",
    "LesionDefinition",
    "lesionwise_case",
    "lesionwise_region",
    "summarize_lesionwise",
]

LESION_METRICS: tuple[str, ...] = ("dice", "hd95")
COUNTS: tuple[str, ...] = ("gt_lesions", "pred_lesions", "matched", "fp", "missed")

_DILATION = 3  # BraTS-2023-Metrics, challenge_name == 'BraTS-GLI'
_MIN_VOLUME_MM3 = 50.0  # lesions with volume <= this are dropped
_PENALTY_2023 = 374.0
_MARGIN = _DILATION + 1  # a crop this far beyond the tumour leaves every dilation intact


class LesionDefinition(str, Enum):
    """Which reference the lesion-wise metrics follow (see the module docstring)."""

    BRATS = "brats"
    BRATS2023 = "brats2023"


def lesionwise_case(
    pred_label: np.ndarray,
    ref_label: np.ndarray,
    spacing: Sequence[float],
    *,
    convention: LabelConvention = LabelConvention.AUTO,
    ref_convention: LabelConvention | None = None,
    definition: LesionDefinition = LesionDefinition.BRATS,
) -> dict[str, dict[str, float]]:
    """Return ``{"WT"|"TC"|"ET": {"dice", "hd95", "gt_lesions", "pred_lesions", "matched", "fp", "missed"}}``.

    ``brats2023`` adds ``small_lesions`` (reference lesions of <= 50 mm^3, left out of everything else).
    ``spacing`` is in array axis order (see the module docstring for how ``brats`` uses it). Regions
    come from :func:`~fedseg.labels.label_to_regions` (each map's convention is detected on
    its own under AUTO; ``ref_convention`` is the reference's, default the same). Both maps are cropped first to their tumour plus a margin that
    keeps every component, dilation and surface as on the full arrays.
    """
    pred_label, ref_label = np.asarray(pred_label), np.asarray(ref_label)
    if pred_label.shape != ref_label.shape:
        raise MetricsError(f"prediction and reference must have one shape, found {pred_label.shape} and {ref_label.shape}")
    sp = _check_spacing(spacing, pred_label.ndim)
    box = bounding_box((pred_label != 0) | (ref_label != 0), margin=_MARGIN)
    if box is not None:
        pred_label, ref_label = pred_label[box], ref_label[box]
    pred_regions = label_to_regions(pred_label, convention)
    ref_regions = label_to_regions(ref_label, convention if ref_convention is None else ref_convention)
    return {name: lesionwise_region(pred_regions[name], ref_regions[name], sp, definition=definition) for name in REGIONS}


def lesionwise_region(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, definition: LesionDefinition = LesionDefinition.BRATS
) -> dict[str, float]:
    """Return lesion-wise Dice, HD95 and the counts of one region's binary masks.

    The masks are cropped to their union plus a margin first (TC and ET are far smaller than WT).
    """
    p, r = np.asarray(pred, bool), np.asarray(ref, bool)
    box = bounding_box(p | r, margin=_MARGIN)
    if box is not None:
        p, r = p[box], r[box]
    if LesionDefinition(definition) is LesionDefinition.BRATS2023:
        return _brats2023(p, r, tuple(spacing))
    return _brats(p, r, tuple(spacing))


def _brats(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    ref_cc, n_ref = components(ref)
    pred_cc, n_pred = components(pred)
    matches = match_one_to_one(*pair_dice(ref_cc, n_ref, pred_cc, n_pred), n_ref, n_pred)
    itk_spacing = tuple(reversed(spacing))  # what panoptica pairs with the [Z, Y, X] array
    ref_boxes, pred_boxes = ndimage.find_objects(ref_cc), ndimage.find_objects(pred_cc)
    dices, hds = [], []
    for r, p, d in matches:
        box = _boxes_union([ref_boxes[r - 1], pred_boxes[p - 1]], ref.shape)
        dices.append(d)
        hds.append(hd95_cropped(pred_cc[box] == p, ref_cc[box] == r, itk_spacing, full_shape=ref.shape, empty="brats"))
    if matches:
        dice, hd = float(np.mean(dices)), float(np.mean(hds))
    elif n_ref + n_pred == 0:
        dice, hd = math.nan, math.nan
    else:
        dice, hd = 0.0, math.inf
    tp = len(matches)
    return {"dice": dice, "hd95": hd, "gt_lesions": n_ref, "pred_lesions": n_pred, "matched": tp,
            "fp": n_pred - tp, "missed": n_ref - tp}


def _brats2023(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    merged, dilated_cc, n = merge_by_dilation(ref, _DILATION)
    pred_cc, n_pred = components(pred)
    hits = touching(dilated_cc, n, pred_cc, n_pred)
    voxel_mm3 = math.prod(spacing)
    sizes = np.bincount(merged.ravel(), minlength=n + 1)
    boxes, pred_boxes = ndimage.find_objects(dilated_cc), ndimage.find_objects(pred_cc)
    dices, hds, small, found = [], [], 0, 0
    for k in range(1, n + 1):
        if sizes[k] * voxel_mm3 <= _MIN_VOLUME_MM3:
            small += 1
            continue
        if hits[k - 1].size == 0:
            dices.append(0.0)
            hds.append(_PENALTY_2023)
            continue
        found += 1
        ids = hits[k - 1]
        # the hit components may reach outside the lesion's dilated box: take the union of their boxes
        box = _boxes_union([boxes[k - 1]] + [pred_boxes[i - 1] for i in ids], ref.shape)
        lesion, hit = merged[box] == k, np.isin(pred_cc[box], ids)
        inter = int(np.count_nonzero(lesion & hit))
        dices.append(2.0 * inter / (int(np.count_nonzero(lesion)) + int(np.count_nonzero(hit))))
        hd = robust_hd95(hit, lesion, spacing)
        hds.append(_PENALTY_2023 if math.isinf(hd) else hd)
    all_hits = np.unique(np.concatenate(hits)) if hits else np.array([], dtype=np.int64)
    n_fp = n_pred - int(all_hits.size)
    denom = len(dices) + n_fp
    dice = sum(dices) / denom if denom else 1.0
    hd95 = (sum(hds) + _PENALTY_2023 * n_fp) / denom if denom else 0.0
    return {"dice": dice, "hd95": hd95, "gt_lesions": len(dices), "pred_lesions": n_pred, "matched": found,
            "fp": n_fp, "missed": len(dices) - found, "small_lesions": small}


def _boxes_union(boxes: Sequence[tuple[slice, ...]], shape: Sequence[int], margin: int = 1) -> tuple[slice, ...]:
    """Return the union of boxes grown by ``margin`` voxels (clipped to ``shape``)."""
    return tuple(
        slice(max(min(b[ax].start for b in boxes) - margin, 0), min(max(b[ax].stop for b in boxes) + margin, shape[ax]))
        for ax in range(len(shape))
    )


def summarize_lesionwise(rows: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, object]]:
    """Return ``{region: {"dice": stats, "hd95": stats, <count>: total}}`` over per-case lesion-wise rows.

    ``stats`` are those of :func:`~fedseg.metrics.summary.describe` (NaN left out, an infinite value
    makes the mean infinite, as the official pandas mean does); counts are summed over cases.
    """
    rows = list(rows)
    out: dict[str, dict[str, object]] = {}
    for region in REGIONS:
        values = [row.get(region, {}) for row in rows]
        with np.errstate(invalid="ignore"):  # inf - inf inside std/percentile: NaN is the right answer
            out[region] = {m: describe(np.array([float(v.get(m, math.nan)) for v in values])) for m in LESION_METRICS}
        for count in COUNTS:
            out[region][count] = int(sum(int(v.get(count, 0)) for v in values))
    return out
