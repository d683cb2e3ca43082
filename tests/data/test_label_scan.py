"""The dataset-level label decision made once before preprocessing (fedseg.data.label_scan)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from fedseg.data.discovery import Discovery, RawCase
from fedseg.data.label_scan import decide_dataset_labels, read_label_values
from fedseg.labels import LabelConvention, Layout

C = LabelConvention


def _found(layout: Layout, conventions: dict[str, LabelConvention], *, seg: bool = True) -> Discovery:
    cases = [RawCase(cid, {}, Path(f"{cid}.nii.gz") if seg else None, conv) for cid, conv in conventions.items()]
    return Discovery(Path("raw"), layout, cases)


def _reader(values: dict[str, set[int]]):
    return lambda path: values[path.name.split(".")[0]]


def test_a_4_in_one_case_and_a_3_in_another_is_brats2024_post() -> None:
    found = _found(Layout.BRATS2023, {"a": C.BRATS2023, "b": C.BRATS2023, "c": C.BRATS2023})
    decided, groups = decide_dataset_labels(found, reader=_reader({"a": {0, 1, 2, 3}, "b": {0, 2, 4}, "c": {0}}))
    assert {c.convention for c in decided.cases} == {C.BRATS2024_POST}  # b's 4 is a cavity, not ET
    assert len(groups) == 1 and groups[0].cases == 3
    assert groups[0].to_dict()["convention"] == "brats2024-post" and "label 3 in 1 and label 4 in 1" in groups[0].decision.reason


def test_only_4s_is_brats2021_and_naming_is_the_fallback() -> None:
    only4 = _found(Layout.BRATS2023, {"a": C.BRATS2023, "b": C.BRATS2023})
    decided, _ = decide_dataset_labels(only4, reader=_reader({"a": {0, 4}, "b": {0, 1}}))
    assert {c.convention for c in decided.cases} == {C.BRATS2021}
    silent = _found(Layout.BRATS2021, {"a": C.BRATS2021})
    decided, groups = decide_dataset_labels(silent, reader=_reader({"a": {0, 1, 2}}))
    assert decided.cases[0].convention is C.BRATS2021 and "no label 3 or 4" in groups[0].decision.reason


def test_mixed_namings_are_decided_separately() -> None:
    found = _found(Layout.BRATS2021, {"old": C.BRATS2021, "new": C.BRATS2023})
    decided, groups = decide_dataset_labels(found, reader=_reader({"old": {0, 4}, "new": {0, 3}}))
    assert {c.id: c.convention for c in decided.cases} == {"old": C.BRATS2021, "new": C.BRATS2023}
    assert sorted(g.group for g in groups) == ["brats2021 naming", "brats2023 naming"]


def test_csv_auto_stated_conventions_and_override() -> None:
    csv = _found(Layout.CSV, {"a": C.AUTO, "b": C.AUTO, "n": C.NNUNET_BRATS})
    decided, groups = decide_dataset_labels(csv, reader=_reader({"a": {0, 3}, "b": {0, 4}, "n": {0, 1}}))
    assert {c.id: c.convention for c in decided.cases} == {"a": C.BRATS2024_POST, "b": C.BRATS2024_POST,
                                                          "n": C.NNUNET_BRATS}
    assert any("stated by the CSV" in g.decision.reason for g in groups)
    no_labels = _found(Layout.CSV, {"a": C.AUTO}, seg=False)
    assert decide_dataset_labels(no_labels, reader=_reader({}))[0].cases[0].convention is C.BRATS2021
    nnunet = _found(Layout.NNUNET, {"a": C.NNUNET_BRATS})
    decided, groups = decide_dataset_labels(nnunet, reader=_reader({}))  # dataset.json decides, nothing read
    assert decided.cases[0].convention is C.NNUNET_BRATS and "dataset.json" in groups[0].decision.reason
    forced, groups = decide_dataset_labels(csv, "brats2023", reader=_reader({}))
    assert {c.convention for c in forced.cases} == {C.BRATS2023} and "forced" in groups[0].decision.reason


def test_unreadable_label_is_left_to_its_case(tmp_path: Path) -> None:
    good = tmp_path / "a.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.array([[[0, 4]]], np.uint8)), str(good))
    bad = tmp_path / "b.nii.gz"
    bad.write_bytes(b"not an image")
    assert read_label_values(good) == (0, 4)
    found = Discovery(tmp_path, Layout.BRATS2021, [RawCase("a", {}, good, C.BRATS2021), RawCase("b", {}, bad, C.BRATS2021)])
    decided, groups = decide_dataset_labels(found)
    assert {c.convention for c in decided.cases} == {C.BRATS2021} and "1 label map(s) read" in groups[0].decision.reason
