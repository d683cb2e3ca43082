"""case_metrics: per-region metrics from label maps, empty regions, conventions, crop equivalence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedseg.errors import MetricsError
from fedseg.metrics import (
    METRICS,
    REGIONS,
    EmptyPolicy,
    LabelConvention,
    case_metrics,
    dice,
    hd95,
    image_diagonal_mm,
    label_to_regions,
    sensitivity,
    specificity,
)

SHAPE = (12, 16, 14)
SPACING = (2.0, 1.0, 0.5)


def _tumour(et: int = 4) -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[2:10, 3:13, 2:12] = 2  # oedema
    lab[4:8, 5:11, 4:10] = 1  # necrosis
    lab[5:7, 6:9, 5:8] = et  # enhancing
    return lab


def test_identical_label_maps() -> None:
    lab = _tumour()
    m = case_metrics(lab, lab, SPACING)
    assert set(m) == set(REGIONS)
    for region in REGIONS:
        assert set(m[region]) == set(METRICS)
        assert m[region]["dice"] == 1.0 and m[region]["hd95"] == 0.0
        assert m[region]["sensitivity"] == 1.0 and m[region]["specificity"] == 1.0
        assert m[region]["pred_ml"] == m[region]["ref_ml"]
    # volumes by hand: WT 8*10*10 voxels of 1 mm^3 (2 * 1 * 0.5) = 0.8 ml; ET 2*3*3 voxels = 0.018 ml
    assert m["WT"]["ref_ml"] == pytest.approx(0.8)
    assert m["ET"]["ref_ml"] == pytest.approx(0.018)


def test_matches_region_wise_full_array_metrics() -> None:
    rng = np.random.default_rng(3)
    ref = _tumour()
    pred = ref.copy()
    pred[rng.random(SHAPE) > 0.93] = 0
    pred[np.roll(ref, 2, axis=2) == 4] = 4
    m = case_metrics(pred, ref, SPACING)
    pr, rr = label_to_regions(pred, "brats2021"), label_to_regions(ref, "brats2021")
    for region in REGIONS:
        assert m[region]["dice"] == pytest.approx(dice(pr[region], rr[region]), abs=1e-12)
        assert m[region]["hd95"] == pytest.approx(hd95(pr[region], rr[region], SPACING), abs=1e-9)
        assert m[region]["sensitivity"] == pytest.approx(sensitivity(pr[region], rr[region]))
        assert m[region]["specificity"] == pytest.approx(specificity(pr[region], rr[region]))


def test_disjoint_tumours() -> None:
    ref = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ref[1:3, 1:3, 1:3] = 2
    pred[9:11, 12:14, 10:12] = 2
    m = case_metrics(pred, ref, SPACING)
    assert m["WT"]["dice"] == 0.0 and m["WT"]["sensitivity"] == 0.0 and m["WT"]["hd95"] > 0
    # TC and ET empty in both: BraTS convention gives a perfect score
    assert m["TC"]["dice"] == 1.0 and m["TC"]["hd95"] == 0.0


@pytest.mark.parametrize("missing", ["ET", "TC", "WT"])
def test_each_region_missing_in_prediction(missing: str) -> None:
    ref = _tumour()
    pred = ref.copy()
    if missing == "ET":
        pred[pred == 4] = 1
    elif missing == "TC":
        pred[(pred == 1) | (pred == 4)] = 2
    else:
        pred[:] = 0
    diag = image_diagonal_mm(SHAPE, SPACING)
    m = case_metrics(pred, ref, SPACING)
    assert m[missing]["dice"] == 0.0 and m[missing]["hd95"] == pytest.approx(diag)
    assert m[missing]["sensitivity"] == 0.0 and m[missing]["pred_ml"] == 0.0
    n = case_metrics(pred, ref, SPACING, empty=EmptyPolicy.NAN)
    assert n[missing]["dice"] == 0.0 and math.isnan(n[missing]["hd95"])
    assert m["WT"]["ref_ml"] == pytest.approx(0.8)


@pytest.mark.parametrize("missing", ["ET", "TC"])
def test_each_region_missing_in_both(missing: str) -> None:
    ref = _tumour()
    if missing == "ET":
        ref[ref == 4] = 1
    else:
        ref[(ref == 1) | (ref == 4)] = 2
    m = case_metrics(ref, ref, SPACING)
    assert m[missing]["dice"] == 1.0 and m[missing]["hd95"] == 0.0 and m[missing]["sensitivity"] == 1.0
    n = case_metrics(ref, ref, SPACING, empty="nan")
    assert math.isnan(n[missing]["dice"]) and math.isnan(n[missing]["hd95"]) and math.isnan(n[missing]["sensitivity"])
    assert n["WT"]["dice"] == 1.0


def test_no_tumour_anywhere() -> None:
    z = np.zeros(SHAPE, np.uint8)
    m = case_metrics(z, z, SPACING)
    assert all(m[r]["dice"] == 1.0 and m[r]["hd95"] == 0.0 and m[r]["pred_ml"] == 0.0 for r in REGIONS)


def test_reference_empty_prediction_not() -> None:
    z = np.zeros(SHAPE, np.uint8)
    m = case_metrics(_tumour(), z, SPACING)
    assert m["WT"]["dice"] == 0.0 and m["WT"]["hd95"] == pytest.approx(image_diagonal_mm(SHAPE, SPACING))
    assert m["WT"]["sensitivity"] == 1.0  # nothing to find; NaN under the nan policy
    assert math.isnan(case_metrics(_tumour(), z, SPACING, empty="nan")["WT"]["sensitivity"])


def test_auto_detects_each_side_and_forced_convention_validates() -> None:
    ref21, pred23 = _tumour(et=4), _tumour(et=3)
    m = case_metrics(pred23, ref21, SPACING)  # fedseg-internal prediction vs a BraTS 2021 reference
    assert m["ET"]["dice"] == 1.0
    with pytest.raises(MetricsError, match=r"^prediction: unexpected label values \{3\}"):
        case_metrics(pred23, ref21, SPACING, convention=LabelConvention.BRATS2021)
    with pytest.raises(MetricsError, match=r"^reference: unexpected label values \{4\}"):
        case_metrics(pred23, ref21, SPACING, convention=LabelConvention.BRATS2023)


def test_shape_and_spacing_errors() -> None:
    with pytest.raises(MetricsError, match="one shape"):
        case_metrics(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8), (1, 1, 1))
    with pytest.raises(MetricsError, match="spacings"):
        case_metrics(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 2), np.uint8), (1, 1))
