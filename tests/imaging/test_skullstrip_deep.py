"""deepbet for real: Dice on the shared ITK head and on a synthetic head at 3 mm, in memory, offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.imaging.config import SkullStrip
from fedseg.imaging.resample import reference_grid
from fedseg.imaging.skullstrip import strip_skull
from fedseg.imaging.skullstrip_deep import WORK_VOXELS, deepbet_available, working_grid
from tests.conftest import SHARED_DATA

HEAD_DIR = SHARED_DATA / "itk-kmeans-head"
pytestmark = pytest.mark.skipif(not deepbet_available(), reason="deepbet is not installed")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any network connection attempt fail the test."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("deepbet tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_working_grid_is_isotropic_ras_and_covers_the_image() -> None:
    img = sitk.Image((128, 128, 62), sitk.sitkFloat32)
    img.SetSpacing((2.0, 2.0, 3.0))
    img.SetDirection((1.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0))  # the ITK head's coronal direction
    grid = working_grid(img)
    assert max(grid.GetSize()) == WORK_VOXELS and len(set(grid.GetSpacing())) == 1
    assert grid.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    far = img.TransformIndexToPhysicalPoint((127, 127, 61))
    index = grid.TransformPhysicalPointToContinuousIndex(far)
    assert all(-1e-6 <= i <= s - 1 + 1e-6 for i, s in zip(index, grid.GetSize()))


@pytest.mark.slow
def test_deepbet_dice_on_real_itk_head(offline: None) -> None:
    if not (HEAD_DIR / "t1_head.nii.gz").exists():
        pytest.skip("shared ITK head not present")
    t1 = sitk.ReadImage(str(HEAD_DIR / "t1_head.nii.gz"))  # 128x128x62 of 2x2x3 mm, 318 KB on disk
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(HEAD_DIR / "brain_labels.nii.gz"))) > 0
    mask, method, reason = strip_skull({"t1": t1, "t1ce": t1}, SkullStrip.AUTO)
    assert (method, reason) == ("deepbet", "auto: head with skull")
    assert mask.GetSize() == t1.GetSize() and mask.GetPixelID() == sitk.sitkUInt8
    assert _dice(sitk.GetArrayFromImage(mask) > 0, truth) >= 0.95  # measured 0.965


@pytest.mark.slow
def test_deepbet_on_a_synthetic_head_at_3mm(offline: None) -> None:
    synth = pytest.importorskip("fedseg.synth")
    case = synth.make_case(np.random.default_rng(7), synth.PROFILES[0], case_id="db", size_scale=1.0)
    grid = reference_grid(case.images["t1"], (3.0, 3.0, 3.0))  # ~59x70x55 voxels: under 100 KB on disk
    t1 = sitk.Resample(case.images["t1"], grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    truth = sitk.GetArrayFromImage(sitk.Resample(case.brain_mask, grid, sitk.Transform(),
                                                 sitk.sitkNearestNeighbor, 0)) > 0
    mask, method, _ = strip_skull({"t1": t1, "t1ce": t1}, SkullStrip.DEEPBET)
    assert method == "deepbet"
    assert _dice(sitk.GetArrayFromImage(mask) > 0, truth) >= 0.93  # measured 0.954
