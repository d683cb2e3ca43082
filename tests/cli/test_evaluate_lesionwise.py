"""`fedseg evaluate --metrics / --lesion-definition` through the CLI: JSON keys, table, CSV columns."""

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


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    ref = np.zeros((12, 20, 30), np.uint8)
    ref[2:6, 2:6, 2:6] = 3  # lesion 1 (ET, so in WT, TC and ET)
    ref[2:6, 2:6, 20:24] = 2  # lesion 2, oedema only (WT)
    pred = ref.copy()
    pred[2:6, 2:6, 20:24] = 0  # lesion 2 missed
    pred[8:11, 14:18, 10:14] = 2  # a false positive in WT
    _write(tmp_path / "truth" / "c1_seg.nii.gz", ref)
    _write(tmp_path / "pred" / "c1.nii.gz", pred)
    return tmp_path / "pred", tmp_path / "truth"


def test_default_is_both_in_json(folders: tuple[Path, Path]) -> None:
    pred, truth = folders
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["settings"]["metrics"] == "both" and doc["settings"]["lesion_definition"] == "brats"
    wt = doc["cases"][0]["lesionwise"]["WT"]
    # brats: lesion 1 matched exactly; lesion 2 missed and the FP only in the counts
    assert (wt["dice"], wt["hd95"], wt["gt_lesions"], wt["matched"], wt["fp"], wt["missed"]) == (1.0, 0.0, 2, 1, 1, 1)
    assert doc["cases"][0]["metrics"]["WT"]["dice"] < 1.0  # legacy metrics are there too
    assert doc["lesionwise_summary"]["WT"]["dice"]["mean"] == 1.0


def test_brats2023_definition_and_csv(folders: tuple[Path, Path], tmp_path: Path) -> None:
    pred, truth = folders
    out = tmp_path / "m.csv"
    res = runner.invoke(
        app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--lesion-definition", "brats2023", "--csv", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "Lesion-wise (brats2023)" in res.stdout and "HD95 (mm)" in res.stdout
    row = next(csv.DictReader(out.open()))
    # WT: lesion 1 (64 voxels) hit with Dice 1; lesion 2 (64) missed; the FP (48 voxels) is not
    # near any lesion: Dice (1 + 0) / (2 + 1) = 1/3, HD95 (0 + 374 + 374) / 3
    assert float(row["WT_lesionwise_dice"]) == pytest.approx(1 / 3)
    assert float(row["WT_lesionwise_hd95"]) == pytest.approx(748 / 3)
    assert row["WT_lesionwise_fp"] == "1" and row["WT_dice"] != ""


def test_legacy_only_and_lesion_wise_only(folders: tuple[Path, Path]) -> None:
    pred, truth = folders
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--metrics", "legacy", "--json", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "lesionwise_summary" not in doc and "lesionwise" not in doc["cases"][0]
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--metrics", "lesion-wise"])
    assert res.exit_code == 0, res.output
    assert "Lesion-wise (brats)" in res.stdout and "Specificity" not in res.stdout
    res = runner.invoke(app, ["evaluate", "--pred", str(pred), "--truth", str(truth), "--metrics", "nope"])
    assert res.exit_code == 2
