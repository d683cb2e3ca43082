"""Tests for realistic synth heads (fedseg.synth.head, .acquisition, profiles 3-5): anatomy, contrast, grids, motion."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.imaging.io import grid_of, same_grid
from fedseg.labels import MODALITIES
from fedseg.synth import PROFILES, GridSpec, HeadModel, SynthCase, Tissue, make_case, motion_transform
from fedseg.synth.acquisition import box_kernel, draw_orientation, voxel_average

SCALE = 0.5


def _arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


@pytest.fixture(scope="module")
def fine_head() -> SynthCase:
    """A realistic head on 1 mm grids (no partial volume to blur the tissue means)."""
    iso = GridSpec((1.0, 1.0, 1.0), (240.0, 240.0, 240.0), PROFILES[4].grid("t1").direction, (0.0, 0.0, -30.0))
    profile = dataclasses.replace(PROFILES[4], grids=dict.fromkeys(MODALITIES, iso), random_orientation=False,
                                  partial_volume=False)
    return make_case(np.random.default_rng(11), profile, case_id="fine", size_scale=SCALE)


@pytest.fixture(scope="module")
def thick_heads() -> dict[int, SynthCase]:
    return {p: make_case(np.random.default_rng([2, p]), PROFILES[p], case_id=f"r{p}", size_scale=0.4) for p in (3, 4, 5)}


def _on_reference(case: SynthCase, modality: str) -> np.ndarray:
    """The modality brought onto the T1ce grid with the true motion."""
    ref = case.images["t1ce"]
    moved = sitk.Resample(case.images[modality], ref, motion_transform(case.misalignment[modality]), sitk.sitkLinear, 0.0)
    return _arr(moved).astype(float)


def test_scanner_anatomy_and_contrast(fine_head: SynthCase) -> None:
    tissue = _arr(fine_head.tissue)
    present = set(np.unique(tissue).tolist())
    assert {Tissue.SKIN, Tissue.FAT, Tissue.MUSCLE, Tissue.MARROW, Tissue.EYE, Tissue.CANAL, Tissue.CORD} <= present
    # T1ce shares the tissue map's grid (T1 has the same contrast outside the tumour); T2 is moved back.
    t1, t2 = _arr(fine_head.images["t1ce"]).astype(float), _on_reference(fine_head, "t2")

    def mean(image: np.ndarray, t: Tissue) -> float:
        return float(np.median(image[tissue == t]))

    # Scalp fat (and fatty diploe) brighter than brain on T1; muscle darker than white matter (about grey matter) on T1 and dark on T2; eyes CSF-bright on T2.
    assert mean(t1, Tissue.FAT) > 1.2 * mean(t1, Tissue.WM) > 1.2 * mean(t1, Tissue.GM)
    assert mean(t1, Tissue.MARROW) > mean(t1, Tissue.WM)
    assert mean(t1, Tissue.MUSCLE) < mean(t1, Tissue.WM) and mean(t2, Tissue.MUSCLE) < 0.7 * mean(t2, Tissue.GM)
    assert mean(t2, Tissue.EYE) > 1.5 * mean(t2, Tissue.WM) and mean(t1, Tissue.EYE) < 0.5 * mean(t1, Tissue.WM)
    # Fat lies in the scalp: between the skin and the skull, outside the brain mask.
    brain = _arr(fine_head.brain_mask) > 0
    assert not (brain & np.isin(tissue, [Tissue.FAT, Tissue.MUSCLE, Tissue.EYE, Tissue.CORD])).any()
    # The cord runs below the brain; the eyes sit in front of and below it; sinus air lies inside the head.
    z_index = np.argwhere(brain)[:, 0]
    assert np.argwhere(tissue == Tissue.CORD)[:, 0].min() < z_index.min()
    from scipy import ndimage as ndi

    body = ndi.binary_fill_holes(tissue > 0)
    assert ((tissue == Tissue.AIR) & body).sum() > 0.01 * brain.sum()
    assert 0.3 * 1200 * SCALE**3 < brain.sum() / 1000 < 1.6 * 1200 * SCALE**3  # ml at 1 mm


def test_thick_slices_own_grids_motion_and_orientation(thick_heads: dict[int, SynthCase]) -> None:
    spacing = {p: {m: tuple(sorted(c.images[m].GetSpacing())) for m in MODALITIES} for p, c in thick_heads.items()}
    assert spacing[3]["t1"] == spacing[3]["t1ce"] == (1.0, 1.0, 1.0) and spacing[3]["t2"][2] == 3.0
    assert spacing[4]["t1ce"] == (1.0, 1.0, 5.0) and spacing[5]["t1ce"] == (0.7, 0.7, 6.0)
    for p, case in thick_heads.items():
        prof = PROFILES[p]
        assert prof.head is HeadModel.REALISTIC and prof.partial_volume
        ref = grid_of(case.images["t1ce"])
        assert not same_grid(grid_of(case.images["flair"]), ref) and not same_grid(grid_of(case.images["t2"]), ref)
        assert same_grid(grid_of(case.brain_mask), ref) and _arr(case.brain_mask).any()
        for m, rec in case.misalignment.items():
            rot, trans = np.abs(rec["rotation_deg"]), np.linalg.norm(rec["translation_mm"])
            assert rot.max() <= 3.0 and trans <= 3.0 * 0.4 + 1e-9
            assert (rot.max() > 0) == (m != "t1ce")
        assert case.extra["head_pose_deg"] and max(abs(a) for a in case.extra["head_pose_deg"]) <= prof.pose_deg
    codes = {sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(c.images[m].GetDirection())
             for c in thick_heads.values() for m in MODALITIES}
    assert len(codes) >= 4


def test_draw_orientation_keeps_the_slice_axis() -> None:
    spec = PROFILES[4].grid("t1")
    seen = set()
    for seed in range(12):
        out = draw_orientation(np.random.default_rng(seed), spec)
        direction = np.asarray(out.direction).reshape(3, 3)
        assert np.allclose(np.abs(direction) @ np.asarray(out.spacing), np.abs(np.asarray(spec.direction).reshape(3, 3)) @ np.asarray(spec.spacing))
        seen.add(out.direction)
    assert len(seen) > 4


def test_box_kernel_and_voxel_average() -> None:
    assert np.allclose(box_kernel(5.0), np.full(5, 0.2))
    assert np.allclose(box_kernel(6.0), np.array([0.5, 1, 1, 1, 1, 1, 0.5]) / 6)
    assert np.isclose(box_kernel(2.5).sum(), 1.0)
    model = sitk.Image([4, 4, 40], sitk.sitkUInt8)
    raw = sitk.Image([4, 4, 8], sitk.sitkUInt8)
    raw.SetSpacing((1.0, 1.0, 5.0))
    step = np.zeros((40, 4, 4), dtype=np.float32)
    step[20:] = 1.0
    out = voxel_average(step, model, raw)
    assert np.allclose(out[:, 0, 0][[10, 30]], [0.0, 1.0]) and np.allclose(out[18:23, 0, 0], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert np.array_equal(voxel_average(step, model, model), step)  # fine axes: left alone


def test_with_head_switches_any_profile() -> None:
    real = PROFILES[0].with_head("realistic")
    assert real.head is HeadModel.REALISTIC and real.partial_volume and real.pose_deg > 0
    assert PROFILES[4].with_head(HeadModel.SIMPLE).head is HeadModel.SIMPLE and PROFILES[0].with_head("simple") is PROFILES[0]
    case = make_case(np.random.default_rng(0), real, case_id="sw", size_scale=0.3)
    assert (_arr(case.tissue) == Tissue.EYE).any()
