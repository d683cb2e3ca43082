"""Pairing label files, grid checks, per-case failures, parallel scoring and CSV/JSON output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.errors import MetricsError
from fedseg.metrics import EmptyPolicy
from fedseg.workflow.evaluate_labels import evaluate_label_maps, write_csv, write_json
from fedseg.workflow.label_pairs import case_id_of, discover_labels, pair_label_files


def label_map(et: int = 4, shift: int = 0) -> np.ndarray:
    lab = np.zeros((10, 12, 14), np.uint8)
    lab[2:8, 3:9, 3:11] = 2
    lab[3:7, 4:8, 5:9] = 1
    lab[4:6, 5:7, 6:8] = et
    return np.roll(lab, shift, axis=2)


def write(path: Path, arr: np.ndarray, spacing=(0.5, 1.0, 2.0), origin=(0.0, 0.0, 0.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    sitk.WriteImage(img, str(path))
    return path


@pytest.mark.parametrize(
    ("name", "case_id"),
    [
        ("BraTS2021_00001_seg.nii.gz", "BraTS2021_00001"),
        ("BraTS-GLI-00002-000-seg.nii.gz", "BraTS-GLI-00002-000"),
        ("BraTS_003.nii.gz", "BraTS_003"),
        ("case.nii", "case"),
        ("notes.txt", None),
    ],
)
def test_case_id_of(name: str, case_id: str | None) -> None:
    assert case_id_of(Path(name)) == case_id


def test_discover_brats_folders_skip_modalities(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    for cid in ("A1", "A2"):
        write(root / cid / f"{cid}_seg.nii.gz", label_map())
        write(root / cid / f"{cid}_t1.nii.gz", label_map())
    assert sorted(discover_labels(root)) == ["A1", "A2"]


def test_discover_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetricsError, match="empty: expected NIfTI label maps"):
        discover_labels(tmp_path / "empty")
    with pytest.raises(MetricsError, match="no such file"):
        discover_labels(tmp_path / "missing")
    dup = tmp_path / "dup"
    write(dup / "X_seg.nii.gz", label_map())
    write(dup / "X" / "X_seg.nii.gz", label_map())
    with pytest.raises(MetricsError, match="two label maps for case 'X'"):
        discover_labels(dup)


def test_pairing_reports_unpaired_and_fails_when_none(tmp_path: Path) -> None:
    write(tmp_path / "p" / "A.nii.gz", label_map())
    write(tmp_path / "p" / "B.nii.gz", label_map())
    write(tmp_path / "t" / "A_seg.nii.gz", label_map())
    write(tmp_path / "t" / "C_seg.nii.gz", label_map())
    paired = pair_label_files(tmp_path / "p", tmp_path / "t")
    assert [p.case_id for p in paired.pairs] == ["A"]
    assert len(paired.unpaired) == 2
    assert "B.nii.gz" in paired.unpaired[0] and "C_seg.nii.gz" in paired.unpaired[1]
    write(tmp_path / "q" / "Z.nii.gz", label_map())
    with pytest.raises(MetricsError, match="no case ids in common"):
        pair_label_files(tmp_path / "q", tmp_path / "t")


def test_two_files_pair_whatever_their_names(tmp_path: Path) -> None:
    p = write(tmp_path / "mine.nii.gz", label_map(et=3, shift=1))
    t = write(tmp_path / "BraTS_9_seg.nii.gz", label_map())
    result = evaluate_label_maps(p, t)
    assert result.ok and [c.case_id for c in result.cases] == ["BraTS_9"]
    c = result.cases[0]
    assert (c.pred_convention, c.truth_convention) == ("brats2023", "brats2021")
    assert 0 < c.metrics["WT"]["dice"] < 1
    assert c.metrics["WT"]["hd95"] == pytest.approx(0.5)  # shifted 1 voxel along x; ITK x spacing 0.5 mm


def test_per_case_failures_name_the_file_and_others_go_on(tmp_path: Path) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    for cid in ("ok1", "ok2", "grid", "origin", "values", "frac", "broken"):
        write(truth / f"{cid}_seg.nii.gz", label_map())
    write(pred / "ok1.nii.gz", label_map(shift=1))
    write(pred / "ok2.nii.gz", label_map())
    write(pred / "grid.nii.gz", label_map(), spacing=(1.0, 1.0, 2.0))
    write(pred / "origin.nii.gz", label_map(), origin=(0.0, 5.0, 0.0))
    bad = label_map()
    bad[0, 0, 0] = 7
    write(pred / "values.nii.gz", bad)
    write(pred / "frac.nii.gz", label_map().astype(np.float32) + np.float32(0.5) * (label_map() == 1))
    (pred / "broken.nii.gz").write_bytes(b"not a nifti at all")
    result = evaluate_label_maps(pred, truth, jobs=1)
    assert [c.case_id for c in result.cases] == ["ok1", "ok2"]
    msgs = {f.case_id: f.message for f in result.failures}
    assert set(msgs) == {"grid", "origin", "values", "frac", "broken"}
    assert "grid.nii.gz: grid differs" in msgs["grid"] and "spacing" in msgs["grid"]
    assert "origin" in msgs["origin"]
    assert "values.nii.gz: unexpected label values {7}" in msgs["values"]
    assert "frac.nii.gz: expected integer label values, found non-integer values 1.5" in msgs["frac"]
    assert "broken.nii.gz" in msgs["broken"]
    assert not result.ok


def test_parallel_equals_inline_and_outputs(tmp_path: Path) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    for i in range(3):
        write(truth / f"c{i}" / f"c{i}_seg.nii.gz", label_map())
        write(pred / f"c{i}.nii.gz", label_map(shift=i))
    done: list[str] = []
    inline = evaluate_label_maps(pred, truth, jobs=1, empty=EmptyPolicy.NAN, on_done=done.append)
    parallel = evaluate_label_maps(pred, truth, jobs=2, empty=EmptyPolicy.NAN)
    assert sorted(done) == ["c0", "c1", "c2"]
    assert [c.metrics for c in inline.cases] == [c.metrics for c in parallel.cases]
    write_csv(parallel, tmp_path / "out" / "m.csv")
    write_json(parallel, tmp_path / "out" / "m.json")
    rows = list(csv.DictReader((tmp_path / "out" / "m.csv").open()))
    assert [r["case"] for r in rows] == ["c0", "c1", "c2"] and float(rows[0]["WT_dice"]) == 1.0
    doc = json.loads((tmp_path / "out" / "m.json").read_text())
    assert doc["settings"]["empty"] == "nan" and len(doc["cases"]) == 3
    assert doc["summary"]["WT"]["dice"]["n"] == 3
    assert not list((tmp_path / "out").glob(".*"))  # no temp files left behind


@pytest.mark.parametrize("option", ["--csv", "--json"])
def test_a_report_path_that_is_a_scored_file_is_refused(tmp_path: Path, option: str) -> None:
    from typer.testing import CliRunner

    from fedseg.cli.app import app

    pred = write(tmp_path / "pred" / "A1.nii.gz", label_map(shift=1))
    truth = write(tmp_path / "truth" / "A1.nii.gz", label_map())
    (tmp_path / "link.nii.gz").symlink_to(truth)
    before = truth.read_bytes()
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth"),
                                      option, str(tmp_path / "link.nii.gz")])
    assert result.exit_code == 1 and "refusing to overwrite an input" in result.stderr
    assert "input of case A1" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert truth.read_bytes() == before and pred.exists() and (tmp_path / "link.nii.gz").is_symlink()


def test_a_nan_prediction_file_is_one_short_line_saying_how_many_and_where(tmp_path: Path) -> None:
    # SimpleITK reads NaN in a NIfTI file as 0: without a check, NaN voxels would be scored as background
    import nibabel as nib

    truth = np.zeros((6, 5, 4), np.uint8)
    pred = np.zeros((6, 5, 4), np.float32)
    pred[1, 2, 3] = np.nan  # [Z, Y, X]
    pred[4, 0, 0] = np.inf
    nib.save(nib.Nifti1Image(truth.T, np.eye(4)), str(tmp_path / "case.truth.nii.gz"))
    nib.save(nib.Nifti1Image(pred.T, np.eye(4)), str(tmp_path / "case.pred.nii.gz"))
    result = evaluate_label_maps(tmp_path / "case.pred.nii.gz", tmp_path / "case.truth.nii.gz")
    (failure,) = result.failures
    assert "NaN or infinity in 2 voxel(s), first at (1, 2, 3)" in failure.message and len(failure.message) < 300
