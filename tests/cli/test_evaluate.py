"""`fedseg evaluate --pred/--truth` through the CLI: tables, files, exit codes and messages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from fedseg.cli.app import app

runner = CliRunner()


def _write(path: Path, arr: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))


def _lab(shift: int = 0, et: int = 4) -> np.ndarray:
    lab = np.zeros((8, 10, 12), np.uint8)
    lab[2:6, 2:8, 2:10] = 2
    lab[3:5, 3:7, 4:8] = 1
    lab[3:5, 4:6, 5:7] = et
    return np.roll(lab, shift, axis=1)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    for i, cid in enumerate(("BraTS-GLI-00001-000", "BraTS-GLI-00002-000")):
        _write(truth / cid / f"{cid}-seg.nii.gz", _lab())
        _write(pred / f"{cid}.nii.gz", _lab(shift=i))
    return pred, truth


def test_success_table_csv_json(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = folders
    out_csv, out_json = tmp_path / "r" / "m.csv", tmp_path / "r" / "m.json"
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--csv", str(out_csv), "--json", str(out_json)])
    assert res.exit_code == 0, res.output
    for word in ("WT", "TC", "ET", "Dice", "HD95 (mm)", "median", "25th pct", "75th pct"):
        assert word in res.stdout
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["case"] for r in rows] == ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]
    assert float(rows[0]["ET_dice"]) == 1.0 and float(rows[1]["WT_hd95"]) == 1.0
    doc = json.loads(out_json.read_text())
    assert doc["summary"]["WT"]["dice"]["n"] == 2 and doc["settings"]["labels"] == "auto"


def test_json_to_stdout_and_nan_policy(folders: tuple[Path, Path]) -> None:
    pred, truth = folders
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--json", "-", "--empty", "nan", "--jobs", "1"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["settings"]["empty"] == "nan" and len(doc["cases"]) == 2


def test_unpaired_and_failed_cases_exit_1(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = folders
    _write(pred / "extra.nii.gz", _lab())
    _write(truth / "bad_seg.nii.gz", _lab())
    _write(pred / "bad.nii.gz", _lab(), spacing=(1.0, 2.0, 1.0))
    out_csv = tmp_path / "m.csv"
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--csv", str(out_csv)])
    assert res.exit_code == 1
    assert "extra.nii.gz" in res.stderr and "unpaired" in res.stderr
    assert "bad.nii.gz: grid differs" in res.stderr
    assert "1 case(s) failed and 1 file(s) unpaired" in res.stderr
    assert len(list(csv.DictReader(out_csv.open()))) == 2  # the good cases were still scored and written


def test_forced_convention_rejects_other_labels(tmp_path: Path) -> None:
    _write(tmp_path / "p.nii.gz", _lab(et=3))
    _write(tmp_path / "t.nii.gz", _lab(et=3))
    res = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "p.nii.gz"), "--truth", str(tmp_path / "t.nii.gz"), "--labels", "brats2021"])
    assert res.exit_code == 1
    assert "p.nii.gz: unexpected label values {3}" in res.stderr


def test_empty_folder_and_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    _write(tmp_path / "t.nii.gz", _lab())
    res = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "e"), "--truth", str(tmp_path / "t.nii.gz")])
    assert res.exit_code == 1 and "expected NIfTI label maps" in res.stderr and str(tmp_path / "e") in res.stderr
    assert runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "t.nii.gz")]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--pred", "a", "--truth", "b", "--labels", "brats2019"]).exit_code == 2
    assert runner.invoke(app, ["evaluate", "--pred", "a", "--truth", "b", "--jobs", "0"]).exit_code == 2


def test_help_has_example() -> None:
    res = runner.invoke(app, ["evaluate", "--help"])
    assert res.exit_code == 0 and "Example:" in res.stdout


def _nnunet(lab: np.ndarray) -> np.ndarray:
    """Renumber a BraTS 2023 label map as nnU-Net's BraTS conversion (1 ED, 2 NCR, 3 ET)."""
    out = lab.copy()
    out[lab == 1], out[lab == 2] = 2, 1
    return out


def test_nnunet_and_brats2024_post_pairs_via_labels(tmp_path: Path) -> None:
    nn = _nnunet(_lab(et=3))
    _write(tmp_path / "nn" / "p.nii.gz", nn)
    _write(tmp_path / "nn" / "t.nii.gz", nn)
    res = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "nn" / "p.nii.gz"), "--truth",
                              str(tmp_path / "nn" / "t.nii.gz"), "--labels", "nnunet-brats", "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["settings"]["labels"] == "nnunet-brats" and doc["cases"][0]["pred_convention"] == "nnunet-brats"
    assert doc["settings"]["label_decision"]["truth"] == {"convention": "nnunet-brats", "reason": "forced: --labels nnunet-brats"}
    # TC is NCR + ET, which nnU-Net numbers 2 and 3 (read as brats2023 it would be labels 1 and 3)
    voxel_tc = int(np.count_nonzero((nn == 2) | (nn == 3)))
    assert doc["cases"][0]["metrics"]["TC"]["ref_ml"] == pytest.approx(voxel_tc / 1000.0)
    post = _lab(et=3)
    post[6:8, 0:2, 0:2] = 4  # a resection cavity: no tumour region
    _write(tmp_path / "post" / "p.nii.gz", _lab(et=3))
    _write(tmp_path / "post" / "t.nii.gz", post)
    res = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "post" / "p.nii.gz"), "--truth",
                              str(tmp_path / "post" / "t.nii.gz"), "--labels", "brats2024-post", "--json", "-"])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["cases"][0]["metrics"]
    assert all(metrics[r]["dice"] == 1.0 for r in ("WT", "TC", "ET"))  # the cavity is not scored as tumour


def test_auto_decides_each_side_over_all_its_files_and_reports_why(tmp_path: Path) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    cavity_only = _lab(et=2)  # no ET in this case ...
    cavity_only[6:8, 0:2, 0:2] = 4  # ... but a resection cavity
    for cid, ref in (("c1", _lab(et=3)), ("c2", cavity_only)):
        _write(truth / f"{cid}.nii.gz", ref)
        _write(pred / f"{cid}.nii.gz", ref if cid == "c1" else _lab(et=2))
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    decision = doc["settings"]["label_decision"]
    assert decision["truth"]["convention"] == "brats2024-post" and "label 3 in 1 and label 4 in 1" in decision["truth"]["reason"]
    assert decision["pred"]["convention"] == "brats2023"
    c2 = next(c for c in doc["cases"] if c["case"] == "c2")
    assert c2["truth_convention"] == "brats2024-post"
    assert c2["metrics"]["ET"]["ref_ml"] == 0.0  # case by case, c2's 4 would have been read as ET
