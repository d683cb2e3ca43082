"""Bad voxels and wrong values are counted and located in a short message, never listed one by one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.errors import MetricsError
from fedseg.metrics import LabelConvention, check_labels
from fedseg.voxel_report import format_values, where_voxels


def test_where_voxels_counts_and_shows_the_first_three() -> None:
    mask = np.zeros((4, 5, 6), bool)
    mask[1, 2, 3] = mask[3, 0, 0] = mask[1, 4, 5] = mask[2, 2, 2] = True
    assert where_voxels(mask) == "4 voxel(s), first at (1, 2, 3), (1, 4, 5), (2, 2, 2) (array index order)"
    assert where_voxels(np.zeros(3, bool)) == "0 voxels"
    assert where_voxels(np.array([False, True])) == "1 voxel(s), first at (1) (array index order)"


def test_format_values_caps_the_list() -> None:
    assert format_values({3, 1, 2}) == "{1, 2, 3}"
    assert format_values(range(1000)) == "{0, 1, 2, 3, 4, 5, 6, 7, ... (1000 values)}"


def test_a_nan_prediction_says_how_many_and_where() -> None:
    pred = np.zeros((40, 40, 40), np.float32)
    pred[5:] = np.nan
    with pytest.raises(MetricsError) as info:
        check_labels(pred, LabelConvention.AUTO)
    message = str(info.value)
    assert "NaN or infinity in 56000 voxel(s), first at (5, 0, 0), (5, 0, 1), (5, 0, 2)" in message
    assert len(message) < 200


def test_many_wrong_values_give_a_short_line(tmp_path: Path) -> None:
    import SimpleITK as sitk

    truth = np.zeros((20, 20, 20), np.int16)
    pred = np.arange(5, 8005, dtype=np.int16).reshape(20, 20, 20)  # e.g. a probability map saved as integers
    sitk.WriteImage(sitk.GetImageFromArray(truth), str(tmp_path / "truth.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(pred), str(tmp_path / "pred.nii.gz"))
    with pytest.raises(MetricsError, match=r"\(8000 values\)") as info:
        check_labels(pred, LabelConvention.AUTO)
    assert len(str(info.value)) < 300
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(tmp_path / "pred.nii.gz"),
                                      "--truth", str(tmp_path / "truth.nii.gz")])
    assert result.exit_code == 1 and "values)" in result.stderr
    assert len(result.stderr) < 1000, len(result.stderr)
