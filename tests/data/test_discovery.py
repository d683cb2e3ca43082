"""Raw-case discovery: every layout, DICOM folders, CSV, forced layouts, per-case problems."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.data.discovery import discover
from fedseg.errors import DatasetError
from fedseg.imaging.io import read_image
from fedseg.labels import LabelConvention, Layout

BRATS21 = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair"}
BRATS23 = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}


def tiny(path: Path, value: float = 1.0, size: tuple[int, int, int] = (6, 5, 4)) -> Path:
    """Write a tiny NIfTI with a gradient (x, y, z size) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (np.arange(np.prod(size), dtype=np.float32).reshape(size[::-1]) + value)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    return path


def write_dicom_series(image: sitk.Image, folder: Path) -> Path:
    """Write ``image`` (int16) as a DICOM series, one file per slice, with the tags a series reader needs."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    now_date, now_time = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.2." + now_date + now_time
    study_uid = "1.2.826.0.1.3680043.2.1125.1.3." + now_date + now_time
    common = {
        "0008|0031": now_time, "0008|0021": now_date, "0008|0008": "DERIVED\\SECONDARY",
        "0020|000e": series_uid, "0020|000d": study_uid, "0008|0060": "MR", "0010|0010": "SYNTHETIC^PHANTOM",
        "0020|0037": "\\".join(f"{v:.6f}" for v in (*direction[0:7:3], *direction[1:8:3])),
        "0008|103e": "fedseg test series", "0018|0050": f"{image.GetSpacing()[2]:.6f}",
    }
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        for tag, value in common.items():
            sl.SetMetaData(tag, value)
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        sl.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in position))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0008|0018", f"{series_uid}.{k + 1}")
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    return folder


def folder_case(root: Path, case_id: str, names: dict[str, str], sep: str, *, seg: bool = True,
                skip: tuple[str, ...] = ()) -> Path:
    for m, n in names.items():
        if m not in skip:
            tiny(root / case_id / f"{case_id}{sep}{n}.nii.gz")
    if seg:
        tiny(root / case_id / f"{case_id}{sep}seg.nii.gz", 0)
    # synth's truth files sit beside every case and must be ignored
    tiny(root / case_id / f"{case_id}_brainmask.nii.gz")
    (root / case_id / f"{case_id}_truth.json").write_text("{}")
    return root / case_id


def test_brats2021_layout(tmp_path: Path) -> None:
    folder_case(tmp_path, "BraTS2021_00001", BRATS21, "_")
    folder_case(tmp_path, "BraTS2021_00002", BRATS21, "_", seg=False)
    found = discover(tmp_path)
    assert found.layout == Layout.BRATS2021 and not found.problems
    assert [c.id for c in found.cases] == ["BraTS2021_00001", "BraTS2021_00002"]
    first = found.cases[0]
    assert first.images["t1ce"].name == "BraTS2021_00001_t1ce.nii.gz"
    assert first.images["t1"].name == "BraTS2021_00001_t1.nii.gz"
    assert first.seg is not None and first.seg.name == "BraTS2021_00001_seg.nii.gz"
    assert first.convention == LabelConvention.BRATS2021
    assert found.cases[1].seg is None
    assert set(first.sources()) == {"t1", "t1ce", "t2", "flair", "seg"}


def test_brats2023_layout_and_uppercase_nii(tmp_path: Path) -> None:
    folder_case(tmp_path, "BraTS-GLI-00000-000", BRATS23, "-")
    # BraTS 2018 style nesting and plain .nii with upper-case names are found too
    case = tmp_path / "HGG" / "BraTS-GLI-00001-000"
    for n in BRATS23.values():
        tiny(case / f"BraTS-GLI-00001-000-{n.upper()}.nii")
    found = discover(tmp_path)
    assert found.layout == Layout.BRATS2023 and not found.problems
    assert [c.id for c in found.cases] == ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"]
    assert found.cases[0].convention == LabelConvention.BRATS2023
    assert found.cases[0].images["flair"].name.endswith("-t2f.nii.gz")


def test_forced_layout_must_match(tmp_path: Path) -> None:
    folder_case(tmp_path, "A", BRATS21, "_")
    with pytest.raises(DatasetError, match="no raw cases found.*<ID>-t1c"):
        discover(tmp_path, Layout.BRATS2023)
    assert discover(tmp_path, "brats2021").cases[0].id == "A"
    with pytest.raises(DatasetError, match="imagesTr"):
        discover(tmp_path, Layout.NNUNET)


def test_single_case_folder_is_a_dataset_of_one(tmp_path: Path) -> None:
    case = folder_case(tmp_path, "case-017", BRATS21, "_", seg=False)
    found = discover(case)
    assert [c.id for c in found.cases] == ["case-017"]


def _nnunet(root: Path, channel_key: str, channels: dict[str, str], labels: dict) -> None:
    (root / "labelsTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({channel_key: channels, "labels": labels, "file_ending": ".nii.gz"}))
    for case in ("BRATS_001", "BRATS_002"):
        for ch in channels:
            tiny(root / "imagesTr" / f"{case}_{int(ch):04d}.nii.gz", float(ch))
    tiny(root / "labelsTr" / "BRATS_001.nii.gz", 0)


def test_nnunet_v2_channel_map(tmp_path: Path) -> None:
    _nnunet(tmp_path, "channel_names", {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"},
            {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 3})
    found = discover(tmp_path)
    assert found.layout == Layout.NNUNET and not found.problems
    c1, c2 = found.cases
    assert c1.images["flair"].name == "BRATS_001_0000.nii.gz"
    assert c1.images["t1"].name == "BRATS_001_0001.nii.gz"
    assert c1.images["t1ce"].name == "BRATS_001_0002.nii.gz"
    assert c1.images["t2"].name == "BRATS_001_0003.nii.gz"
    assert c1.seg is not None and c1.seg.name == "BRATS_001.nii.gz" and c2.seg is None
    assert c1.convention == LabelConvention.BRATS2023


def test_nnunet_v1_msd_labels_and_missing_channel(tmp_path: Path) -> None:
    _nnunet(tmp_path, "modality", {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"})
    (tmp_path / "imagesTr" / "BRATS_002_0003.nii.gz").unlink()
    found = discover(tmp_path)
    assert [c.id for c in found.cases] == ["BRATS_001"]
    assert found.cases[0].convention == LabelConvention.NNUNET_BRATS
    assert len(found.problems) == 1 and found.problems[0].case_id == "BRATS_002"
    assert "missing modality t2" in found.problems[0].reason and "BRATS_002_0003.nii.gz" in found.problems[0].reason


def test_nnunet_needs_dataset_json(tmp_path: Path) -> None:
    tiny(tmp_path / "imagesTr" / "X_0000.nii.gz")
    with pytest.raises(DatasetError, match="dataset.json"):
        discover(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "PD"}}))
    with pytest.raises(DatasetError, match="not one of T1"):
        discover(tmp_path)


def test_csv_with_nifti_and_dicom(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing((0.9, 0.8, 2.5))
    image.SetOrigin((10.0, -5.0, 3.0))
    dicom = write_dicom_series(image, tmp_path / "dicom" / "p1_t1ce")
    back = read_image(dicom)
    assert back.GetSize() == (6, 5, 4)
    assert np.allclose(back.GetSpacing(), (0.9, 0.8, 2.5), atol=1e-4)
    assert np.allclose(back.GetOrigin(), (10.0, -5.0, 3.0), atol=1e-4)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    for m in ("t1", "t2", "flair"):
        tiny(tmp_path / "nifti" / f"p1_{m}.nii.gz")
    tiny(tmp_path / "nifti" / "p1_seg.nii.gz", 0)
    (tmp_path / "cases.csv").write_text(
        "case,T1,T1ce,T2,FLAIR,seg\n"
        "p1,nifti/p1_t1.nii.gz,dicom/p1_t1ce,nifti/p1_t2.nii.gz,nifti/p1_flair.nii.gz,nifti/p1_seg.nii.gz\n"
        "p2,nifti/p1_t1.nii.gz,,nifti/p1_t2.nii.gz,nifti/p1_flair.nii.gz,\n"
        "p3,nifti/p1_t1.nii.gz,nifti/nothere.nii.gz,nifti/p1_t2.nii.gz,nifti/p1_flair.nii.gz,\n"
        "\n"
    )
    found = discover(tmp_path / "cases.csv")
    assert found.layout == Layout.CSV
    assert [c.id for c in found.cases] == ["p1"]
    p1 = found.cases[0]
    assert p1.images["t1ce"] == (tmp_path / "dicom" / "p1_t1ce").resolve() and p1.images["t1ce"].is_dir()
    assert p1.convention == LabelConvention.AUTO
    reasons = {p.case_id: p.reason for p in found.problems}
    assert "missing modality t1ce" in reasons["p2"] and "line 3" in reasons["p2"]
    assert "t1ce file not found" in reasons["p3"] and "nothere.nii.gz" in reasons["p3"]
    # the folder holding the CSV is accepted with --layout csv
    assert [c.id for c in discover(tmp_path, Layout.CSV).cases] == ["p1"]


def test_csv_bad_header(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("case,t1,t1ce,t2\nx,a,b,c\n")
    with pytest.raises(DatasetError, match="missing column.*flair"):
        discover(tmp_path / "c.csv")
    (tmp_path / "c.csv").write_text("case,t1,t1ce,t2,flair,age\n")
    with pytest.raises(DatasetError, match="unknown column 'age'"):
        discover(tmp_path / "c.csv")


def test_missing_modality_and_duplicate_ids_are_case_problems(tmp_path: Path) -> None:
    folder_case(tmp_path / "HGG", "X1", BRATS21, "_")
    folder_case(tmp_path / "LGG", "X1", BRATS21, "_")
    folder_case(tmp_path / "HGG", "X2", BRATS21, "_", skip=("flair",))
    folder_case(tmp_path / "LGG", "X3", BRATS21, "_")
    found = discover(tmp_path)
    assert [c.id for c in found.cases] == ["X3"]
    reasons = {p.case_id: p.reason for p in found.problems}
    assert set(reasons) == {"X1", "X2"}
    assert "duplicate case id 'X1' (2 times" in reasons["X1"] and "HGG" in reasons["X1"] and "LGG" in reasons["X1"]
    assert "missing modality flair" in reasons["X2"] and "X2_flair.nii.gz" in reasons["X2"]


def test_duplicate_csv_rows(tmp_path: Path) -> None:
    for m in ("t1", "t1ce", "t2", "flair"):
        tiny(tmp_path / f"{m}.nii.gz")
    row = "a,t1.nii.gz,t1ce.nii.gz,t2.nii.gz,flair.nii.gz\n"
    (tmp_path / "c.csv").write_text("case,t1,t1ce,t2,flair\n" + row + row + row.replace("a,", "b,", 1))
    found = discover(tmp_path / "c.csv")
    assert [c.id for c in found.cases] == ["b"]
    assert found.problems[0].case_id == "a" and "duplicate" in found.problems[0].reason


def test_missing_or_empty_input(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="input not found"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no raw cases found"):
        discover(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="expected a folder of raw cases or a .csv"):
        discover(tmp_path / "x.txt")


@pytest.mark.parametrize("layout", ["brats2023", "nnunet"])
def test_synth_layouts_are_discovered_and_truth_files_ignored(layout: str, tmp_path: Path) -> None:
    from fedseg.synth import write_cases

    write_cases(tmp_path, cases=2, profile=0, layout=layout, seed=1, size_scale=0.2)
    found = discover(tmp_path)
    assert found.layout.value == layout and not found.problems
    assert [c.id for c in found.cases] == ["SYN0_0000", "SYN0_0001"]
    for case in found.cases:
        assert all(case.id in p.name for p in case.images.values())
        assert case.seg is not None and "brainmask" not in case.seg.name
        assert case.convention == LabelConvention.BRATS2023  # both write ET as 3
