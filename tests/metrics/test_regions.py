"""BraTS label conventions and region extraction."""

from __future__ import annotations

import numpy as np
import pytest

from fedseg.errors import MetricsError
from fedseg.metrics import REGIONS, LabelConvention, check_labels, detect_convention, label_to_regions, label_values


def test_regions_constant_matches_model_config() -> None:
    from fedseg.model.config import REGIONS as MODEL_REGIONS

    assert REGIONS == tuple(MODEL_REGIONS) == ("WT", "TC", "ET")


def test_brats2021_regions_by_hand() -> None:
    label = np.array([0, 1, 2, 4, 0, 2], dtype=np.uint8)
    r = label_to_regions(label, LabelConvention.BRATS2021)
    assert r["WT"].tolist() == [False, True, True, True, False, True]
    assert r["TC"].tolist() == [False, True, False, True, False, False]
    assert r["ET"].tolist() == [False, False, False, True, False, False]


def test_brats2023_regions_by_hand() -> None:
    label = np.array([0, 1, 2, 3], dtype=np.int16)
    r = label_to_regions(label, LabelConvention.BRATS2023)
    assert r["WT"].tolist() == [False, True, True, True]
    assert r["TC"].tolist() == [False, True, False, True]
    assert r["ET"].tolist() == [False, False, False, True]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1, 2, 4], LabelConvention.BRATS2021),
        ([0, 4], LabelConvention.BRATS2021),
        ([0, 1, 2, 3], LabelConvention.BRATS2023),
        ([0, 1, 2], LabelConvention.BRATS2023),  # no ET: either; brats2023 (internal) is assumed
        ([0], LabelConvention.BRATS2023),
    ],
)
def test_detect_convention(values: list[int], expected: LabelConvention) -> None:
    assert detect_convention(np.array(values, dtype=np.uint8)) is expected


def test_both_et_labels_is_an_error() -> None:
    with pytest.raises(MetricsError, match=r"both label 3 .* and label 4"):
        detect_convention(np.array([0, 3, 4]))


@pytest.mark.parametrize(
    ("values", "convention", "shown"),
    [
        ([0, 1, 5], LabelConvention.AUTO, "{5}"),
        ([0, 3], LabelConvention.BRATS2021, "{3}"),
        ([0, 4, 7], LabelConvention.BRATS2023, "{4, 7}"),
        ([-1, 0], LabelConvention.AUTO, "{-1}"),
        ([0, 255], LabelConvention.AUTO, "{255}"),
    ],
)
def test_unexpected_values_are_named(values: list[int], convention: LabelConvention, shown: str) -> None:
    with pytest.raises(MetricsError, match="unexpected label values " + shown.replace("{", r"\{").replace("}", r"\}")):
        label_to_regions(np.array(values), convention)


def test_float_labels_must_be_integral() -> None:
    assert check_labels(np.array([0.0, 1.0, 4.0], dtype=np.float32), LabelConvention.AUTO) is LabelConvention.BRATS2021
    with pytest.raises(MetricsError, match="non-integer values 1.5"):
        label_to_regions(np.array([0.0, 1.5]), LabelConvention.AUTO)
    with pytest.raises(MetricsError, match="NaN"):
        label_values(np.array([0.0, np.nan]))


def test_label_values_wide_range_and_bool() -> None:
    assert label_values(np.array([0, 1000, 2], dtype=np.int32)) == (0, 2, 1000)
    assert label_values(np.array([True, False])) == (0, 1)
    with pytest.raises(MetricsError, match="dtype"):
        label_values(np.array(["a"]))
