"""The label vocabulary: conventions, lookup tables, regions, and the dataset-level detection rules."""

from __future__ import annotations

import numpy as np
import pytest

from fedseg.errors import MetricsError
from fedseg.labels import (
    FROM_INTERNAL,
    LABEL_MAPS,
    MODALITIES,
    REFERENCE_MODALITY,
    REGIONS,
    LabelConvention,
    check_labels,
    decide_convention,
    from_internal,
    label_to_regions,
    label_values,
    region_masks,
    regions_to_label,
    to_internal,
)

C = LabelConvention


def test_vocabulary_constants() -> None:
    assert REGIONS == ("WT", "TC", "ET")
    assert MODALITIES == ("t1", "t1ce", "t2", "flair") and REFERENCE_MODALITY == "t1ce"
    assert C.NNUNET_BRATS.value == "nnunet-brats" and C.BRATS2024_POST.value == "brats2024-post"


# Hand-checked tables: raw value -> internal (0 bg, 1 NCR/NETC, 2 ED/SNFH, 3 ET).
@pytest.mark.parametrize(
    ("convention", "to_int", "from_int"),
    [
        (C.BRATS2021, {0: 0, 1: 1, 2: 2, 4: 3}, {0: 0, 1: 1, 2: 2, 3: 4}),
        (C.BRATS2023, {0: 0, 1: 1, 2: 2, 3: 3}, {0: 0, 1: 1, 2: 2, 3: 3}),
        (C.NNUNET_BRATS, {0: 0, 1: 2, 2: 1, 3: 3}, {0: 0, 1: 2, 2: 1, 3: 3}),
        (C.BRATS2024_POST, {0: 0, 1: 1, 2: 2, 3: 3, 4: 0}, {0: 0, 1: 1, 2: 2, 3: 3}),
    ],
)
def test_lookup_tables_by_hand(convention: LabelConvention, to_int: dict[int, int], from_int: dict[int, int]) -> None:
    assert LABEL_MAPS[convention] == to_int and FROM_INTERNAL[convention] == from_int
    raw = np.array(sorted(to_int), dtype=np.uint8)
    assert to_internal(raw, convention).tolist() == [to_int[v] for v in sorted(to_int)]
    internal = np.array([0, 1, 2, 3, 3], dtype=np.uint8)
    back = from_internal(internal, convention.value)
    assert back.dtype == np.uint8 and back.tolist() == [from_int[v] for v in internal.tolist()]
    assert to_internal(back, convention).tolist() == internal.tolist()  # internal -> raw -> internal


def test_round_trips_and_errors() -> None:
    raw21 = np.array([0, 1, 2, 4, 4], dtype=np.uint8)
    internal = to_internal(raw21, "brats2021")
    assert internal.tolist() == [0, 1, 2, 3, 3]
    assert from_internal(internal, C.BRATS2021).tolist() == raw21.tolist()
    assert from_internal(internal, "brats2023").tolist() == [0, 1, 2, 3, 3]
    msd = np.array([0, 1, 2, 3], dtype=np.uint8)  # 1 edema, 2 necrosis, 3 enhancing
    assert to_internal(msd, "nnunet-brats").tolist() == [0, 2, 1, 3]
    assert from_internal(to_internal(msd, "nnunet-brats"), "nnunet-brats").tolist() == msd.tolist()
    post = np.array([0, 1, 2, 3, 4], dtype=np.uint8)  # the resection cavity is lost: it is no tumour
    assert from_internal(to_internal(post, "brats2024-post"), "brats2024-post").tolist() == [0, 1, 2, 3, 0]
    with pytest.raises(ValueError, match=r"unexpected label values \[3\]"):
        to_internal(np.array([0, 3]), "brats2021")
    with pytest.raises(ValueError, match="0..3"):
        from_internal(np.array([5]), "brats2023")
    with pytest.raises(ValueError, match="auto"):
        to_internal(np.array([0]), "auto")


def test_brats2021_regions_by_hand() -> None:
    label = np.array([0, 1, 2, 4, 0, 2], dtype=np.uint8)
    r = label_to_regions(label, C.BRATS2021)
    assert r["WT"].tolist() == [False, True, True, True, False, True]
    assert r["TC"].tolist() == [False, True, False, True, False, False]
    assert r["ET"].tolist() == [False, False, False, True, False, False]


def test_brats2023_regions_by_hand() -> None:
    label = np.array([0, 1, 2, 3], dtype=np.int16)
    r = label_to_regions(label, C.BRATS2023)
    assert r["WT"].tolist() == [False, True, True, True]
    assert r["TC"].tolist() == [False, True, False, True]
    assert r["ET"].tolist() == [False, False, False, True]


def test_nnunet_regions_by_hand() -> None:
    label = np.array([0, 1, 2, 3], dtype=np.uint8)  # 1 ED, 2 NCR, 3 ET
    r = label_to_regions(label, C.NNUNET_BRATS)
    assert r["WT"].tolist() == [False, True, True, True]
    assert r["TC"].tolist() == [False, False, True, True]
    assert r["ET"].tolist() == [False, False, False, True]


def test_brats2024_post_regions_by_hand_cavity_is_background() -> None:
    label = np.array([0, 1, 2, 3, 4], dtype=np.uint8)  # 4 = resection cavity
    r = label_to_regions(label, C.BRATS2024_POST)
    assert r["WT"].tolist() == [False, True, True, True, False]
    assert r["TC"].tolist() == [False, True, False, True, False]
    assert r["ET"].tolist() == [False, False, False, True, False]


def test_region_masks_accept_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    masks = region_masks(torch.tensor([0, 1, 2, 3]))
    assert [masks[r].tolist() for r in REGIONS] == [[False, True, True, True], [False, True, False, True],
                                                     [False, False, False, True]]


def test_regions_to_label_imposes_nesting() -> None:
    wt = np.array([0, 1, 1, 1, 0], bool)
    tc = np.array([0, 0, 1, 1, 1], bool)  # the last TC voxel lies outside WT: dropped
    et = np.array([0, 0, 0, 1, 1], bool)
    label = regions_to_label(wt, tc, et)
    assert label.dtype == np.uint8 and label.tolist() == [0, 2, 1, 3, 0]
    back = region_masks(label)
    assert back["WT"].tolist() == wt.tolist() and back["ET"].tolist() == [False, False, False, True, False]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1, 2, 4], C.BRATS2021),
        ([0, 4], C.BRATS2021),
        ([0, 1, 2, 3], C.BRATS2023),
        ([0, 1, 2], C.BRATS2023),  # no ET: either; brats2023 (internal) is assumed
        ([0], C.BRATS2023),
        ([0, 3, 4], C.BRATS2024_POST),  # one map with both: only the 2024 post-treatment convention
    ],
)
def test_auto_on_one_map(values: list[int], expected: LabelConvention) -> None:
    assert check_labels(np.array(values, dtype=np.uint8), C.AUTO) is expected


def test_dataset_level_rules() -> None:
    # one case holds a 4 (a cavity), another a 3 (ET): the dataset is 2024 post-treatment, so 4 is never ET
    mixed = decide_convention([{0, 1, 2, 4}, {0, 1, 2, 3}, {0, 2}])
    assert mixed.convention is C.BRATS2024_POST
    assert "label 3 in 1 and label 4 in 1" in mixed.reason and "resection cavity" in mixed.reason
    only4 = decide_convention([{0, 1, 2, 4}, {0, 2}])
    assert only4.convention is C.BRATS2021 and "no label 3 anywhere" in only4.reason
    only3 = decide_convention([{0, 3}, {0, 1}])
    assert only3.convention is C.BRATS2023 and "no label 4 anywhere" in only3.reason
    neither = decide_convention([{0, 1, 2}], fallback=C.BRATS2021)
    assert neither.convention is C.BRATS2021 and "no label 3 or 4" in neither.reason
    assert decide_convention([]).convention is C.BRATS2023
    forced = decide_convention([{0, 3, 4}], override="brats2021")
    assert forced.convention is C.BRATS2021 and "forced" in forced.reason
    assert forced.to_dict() == {"convention": "brats2021", "reason": "forced: --labels brats2021"}


@pytest.mark.parametrize(
    ("values", "convention", "shown"),
    [
        ([0, 1, 5], C.AUTO, "{5}"),
        ([0, 3], C.BRATS2021, "{3}"),
        ([0, 4, 7], C.BRATS2023, "{4, 7}"),
        ([0, 4], C.NNUNET_BRATS, "{4}"),
        ([0, 5], C.BRATS2024_POST, "{5}"),
        ([-1, 0], C.AUTO, "{-1}"),
        ([0, 255], C.AUTO, "{255}"),
    ],
)
def test_unexpected_values_are_named(values: list[int], convention: LabelConvention, shown: str) -> None:
    with pytest.raises(MetricsError, match="unexpected label values " + shown.replace("{", r"\{").replace("}", r"\}")):
        label_to_regions(np.array(values), convention)


def test_float_labels_must_be_integral() -> None:
    assert check_labels(np.array([0.0, 1.0, 4.0], dtype=np.float32), C.AUTO) is C.BRATS2021
    with pytest.raises(MetricsError, match="non-integer values 1.5"):
        label_to_regions(np.array([0.0, 1.5]), C.AUTO)
    with pytest.raises(MetricsError, match="NaN"):
        label_values(np.array([0.0, np.nan]))


def test_label_values_wide_range_and_bool() -> None:
    assert label_values(np.array([0, 1000, 2], dtype=np.int32)) == (0, 2, 1000)
    assert label_values(np.array([True, False])) == (0, 1)
    with pytest.raises(MetricsError, match="dtype"):
        label_values(np.array(["a"]))
