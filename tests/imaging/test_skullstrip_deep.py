"""deepbet for real: Dice on the shared ITK head and on a synthetic head at 3 mm, in memory, offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.configs.preprocess import SkullStrip
from fedseg.imaging.register import rotation_angle_deg
from fedseg.imaging.resample import reference_grid
from fedseg.imaging.skullstrip import DeepInput, strip_skull
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
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


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


@pytest.mark.slow
def test_deepbet_reads_the_t1_as_acquired_and_answers_on_the_reference_grid(offline: None) -> None:
    """As preprocessing calls it: the moved T1 on its own grid, the mask on a 3 mm T1ce grid through the motion."""
    synth = pytest.importorskip("fedseg.synth")
    case = synth.make_case(np.random.default_rng([11, 3]), synth.PROFILES[3], case_id="dn")
    grid = reference_grid(case.images["t1ce"], (3.0, 3.0, 3.0))
    motion = synth.motion_transform(case.misalignment["t1"])
    assert rotation_angle_deg(np.asarray(motion.GetMatrix()).reshape(3, 3)) > 0.5  # the T1 really moved
    t1ce = sitk.Resample(case.images["t1ce"], grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    truth = sitk.Resample(sitk.Cast(case.brain_mask, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkLinear, 0.0)
    mask, method, _ = strip_skull({"t1": t1ce, "t1ce": t1ce}, SkullStrip.DEEPBET,
                                  deep_input=DeepInput(case.images["t1"], motion))
    assert method == "deepbet" and mask.GetSize() == grid.GetSize() and mask.GetSpacing() == grid.GetSpacing()
    # measured 0.911 (0.889 when deepbet read the T1 resampled to 3 mm first)
    assert _dice(sitk.GetArrayFromImage(mask) > 0, sitk.GetArrayFromImage(truth) >= 0.5) >= 0.89


def _fake_hdbet(monkeypatch: pytest.MonkeyPatch, *, download: bool) -> None:
    """Install a stand-in ``HD_BET`` package that prints, resets sys.stdout like the real one, and may
    try to download."""
    import sys
    import types

    def get_hdbet_predictor(use_tta: bool, device: object) -> str:
        print("nnU-Net says hello")
        if download:
            socket.create_connection(("zenodo.org", 443), timeout=1)
        return "predictor"

    def hdbet_predict(src: str, dst: str, predictor: str, **_: object) -> None:
        print("predicting", src)
        img = sitk.ReadImage(src)
        sitk.WriteImage(sitk.Cast(img > 0, sitk.sitkUInt8), dst.replace(".nii.gz", "_bet.nii.gz"))

    package, module = types.ModuleType("HD_BET"), types.ModuleType("HD_BET.hd_bet_prediction")
    module.get_hdbet_predictor, module.hdbet_predict = get_hdbet_predictor, hdbet_predict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "HD_BET", package)
    monkeypatch.setitem(sys.modules, "HD_BET.hd_bet_prediction", module)
    monkeypatch.setattr("fedseg.imaging.skullstrip_deep.hdbet_available", lambda: True)


def test_hdbet_prints_stay_off_stdout_and_it_never_reaches_the_network(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from fedseg.errors import ImageError

    img = sitk.GetImageFromArray(np.pad(np.ones((6, 6, 6), np.float32), 3))
    _fake_hdbet(monkeypatch, download=False)
    mask, method, _ = strip_skull({"t1": img, "t1ce": img}, SkullStrip.HD_BET)
    assert method == "hd-bet" and int(sitk.GetArrayFromImage(mask).sum()) == 216
    out = capsys.readouterr()
    assert out.out == "" and "nnU-Net says hello" in out.err
    _fake_hdbet(monkeypatch, download=True)
    connect, resolve = socket.socket.connect, socket.getaddrinfo
    with pytest.raises(ImageError, match="HD-BET tried to reach the network"):
        strip_skull({"t1": img, "t1ce": img}, SkullStrip.HD_BET)
    assert socket.socket.connect is connect and socket.getaddrinfo is resolve  # restored afterwards


def test_a_deep_mask_reaches_the_reference_grid_through_the_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference point p lies at p + 2 mm (x) in the T1: the T1's brain at x = 4..9 is at x = 2..7 on the reference."""
    arr = np.zeros((12, 12, 16), np.float32)
    arr[3:9, 3:9, 4:10] = 1.0  # [z, y, x]
    t1 = sitk.GetImageFromArray(arr)
    reference = sitk.Image(t1.GetSize(), sitk.sitkFloat32)
    reference.SetSpacing((1.0, 1.0, 1.0))
    _fake_hdbet(monkeypatch, download=False)
    mask, method, _ = strip_skull({"t1": reference, "t1ce": reference}, SkullStrip.HD_BET,
                                  deep_input=DeepInput(t1, sitk.TranslationTransform(3, (2.0, 0.0, 0.0))))
    got = sitk.GetArrayFromImage(mask)
    assert method == "hd-bet" and mask.GetSize() == reference.GetSize()
    assert np.flatnonzero(got.any(axis=(0, 1))).tolist() == [2, 3, 4, 5, 6, 7]
    assert np.flatnonzero(got.any(axis=(0, 2))).tolist() == [3, 4, 5, 6, 7, 8]  # y and z do not move
