"""Tests for fedseg.synth: anatomy and contrast, tumour sub-regions, misalignment, profiles, layouts, determinism."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from fedseg.errors import ConfigError, DatasetError
from fedseg.imaging.io import grid_of, read_image, same_grid
from fedseg.labels import MODALITIES, Layout
from fedseg.synth import (
    PROFILES,
    GridSpec,
    SiteProfile,
    SynthCase,
    Tissue,
    case_files,
    make_case,
    motion_transform,
    write_cases,
)

SCALE = 0.4


def _case(profile: SiteProfile | int, seed: int = 0, scale: float = SCALE) -> SynthCase:
    prof = PROFILES[profile] if isinstance(profile, int) else profile
    return make_case(np.random.default_rng(seed), prof, case_id=f"c{seed}", size_scale=scale)


@pytest.fixture(scope="module")
def iso_case() -> SynthCase:
    return _case(0, seed=3, scale=0.5)


@pytest.fixture(scope="module")
def cases_by_profile() -> dict[int, SynthCase]:
    return {p: _case(p, seed=1) for p in (0, 1, 2)}


def _arr(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image)


def test_contrast_ordering_per_modality(iso_case: SynthCase) -> None:
    tissue = _arr(iso_case.tissue)
    mean = {m: {t: float(_arr(iso_case.images[m])[tissue == t].mean()) for t in Tissue if (tissue == t).any()} for m in MODALITIES}
    t1, t1ce, t2, flair = (mean[m] for m in MODALITIES)
    assert t1[Tissue.WM] > t1[Tissue.GM] > t1[Tissue.CSF] > t1[Tissue.AIR]
    assert t1[Tissue.SCALP] > t1[Tissue.GM] > t1[Tissue.SKULL]
    assert t2[Tissue.CSF] > t2[Tissue.GM] > t2[Tissue.WM] > t2[Tissue.SKULL]
    assert flair[Tissue.CSF] < flair[Tissue.WM] < flair[Tissue.GM]
    assert flair[Tissue.ED] > max(flair[Tissue.GM], flair[Tissue.WM], flair[Tissue.CSF])
    assert t2[Tissue.ED] > t2[Tissue.WM]
    if Tissue.ET in t1ce:
        brain = [Tissue.CSF, Tissue.GM, Tissue.WM, Tissue.NCR, Tissue.ED]
        assert t1ce[Tissue.ET] > max(t1ce[t] for t in brain if t in t1ce)
        assert t1ce[Tissue.ET] > 1.5 * t1[Tissue.ET]


def test_reference_contrast_survives_strong_bias(cases_by_profile: dict[int, SynthCase]) -> None:
    for case in cases_by_profile.values():
        tissue, t1ce = _arr(case.tissue), _arr(case.images["t1ce"]).astype(float)
        assert t1ce[tissue == Tissue.WM].mean() > t1ce[tissue == Tissue.GM].mean() > t1ce[tissue == Tissue.CSF].mean()


def test_images_are_int16_scans_with_skull(iso_case: SynthCase) -> None:
    for image in iso_case.images.values():
        assert image.GetPixelID() == sitk.sitkInt16
    brain, tissue = _arr(iso_case.brain_mask), _arr(iso_case.tissue)
    assert set(np.unique(brain)) == {0, 1}
    # The brain mask is everything inside the inner skull surface; skull and scalp surround it.
    assert np.array_equal(brain == 1, tissue >= Tissue.CSF)
    assert (tissue == Tissue.SKULL).sum() > 0.15 * brain.sum()
    head_ml = (tissue > 0).sum() * np.prod(iso_case.tissue.GetSpacing()) / 1000
    full_ml = 4 / 3 * np.pi * 75 * 90 * 70 / 1000
    assert 0.7 * full_ml * 0.5**3 < head_ml < 1.3 * full_ml * 0.5**3


def test_tumour_subregions_nest_inside_brain(cases_by_profile: dict[int, SynthCase], iso_case: SynthCase) -> None:
    for case in [iso_case, *cases_by_profile.values()]:
        label, brain = _arr(case.label), _arr(case.brain_mask)
        assert set(np.unique(label)) <= {0, 1, 2, 3}
        wt, tc, et = label > 0, np.isin(label, (1, 3)), label == 3
        assert wt.sum() > tc.sum() > 0 and np.all(brain[wt] == 1)
        assert case.has_et == bool(et.any())
    # At 1 mm the edema surrounds most of the core, and the rim most of the necrosis.
    label = _arr(iso_case.label)
    tc = np.isin(label, (1, 3))
    shell = np.zeros_like(tc)
    for axis in range(3):
        for step in (-1, 1):
            shell |= np.roll(tc, step, axis=axis)
    shell &= ~tc & (_arr(iso_case.tissue) != Tissue.CSF)  # the tumour stops at the pial surface
    assert (label[shell] == 2).mean() > 0.9


def test_cases_without_enhancing_tumour() -> None:
    profile = dataclasses.replace(PROFILES[0], no_et_fraction=1.0)
    case = _case(profile, seed=5)
    label = _arr(case.label)
    assert not case.has_et and not (label == 3).any() and (label == 1).any() and (label == 2).any()
    # With the default profiles some seeds give cases without ET (the draw is the first after the anatomy).
    assert any(not _case(2, seed=s, scale=0.25).has_et for s in range(8))


def test_profiles_make_distinct_grids(cases_by_profile: dict[int, SynthCase]) -> None:
    assert len(PROFILES) >= 3
    grids = {p: grid_of(c.images["t1ce"]) for p, c in cases_by_profile.items()}
    assert len({g.spacing for g in grids.values()}) == 3
    assert len({g.direction for g in grids.values()}) == 3
    iso = cases_by_profile[0]
    assert all(same_grid(grid_of(iso.images[m]), grids[0]) for m in MODALITIES)  # co-registered site
    p1 = cases_by_profile[1]
    assert grid_of(p1.images["flair"]).spacing != grids[1].spacing
    for case in cases_by_profile.values():
        assert same_grid(grid_of(case.label), grid_of(case.images["t1ce"]))
        assert same_grid(grid_of(case.brain_mask), grid_of(case.images["t1ce"]))


def test_misalignment_bounds_and_identity(cases_by_profile: dict[int, SynthCase]) -> None:
    for p, case in cases_by_profile.items():
        prof = PROFILES[p]
        for m, rec in case.misalignment.items():
            rot, trans = np.array(rec["rotation_deg"]), np.array(rec["translation_mm"])
            if m == "t1ce" or prof.coregistered:
                assert not rot.any() and not trans.any()
                continue
            assert np.abs(rot).max() <= prof.misalign_deg and np.linalg.norm(trans) <= prof.misalign_mm + 1e-9
            assert np.abs(rot).max() > 0 and np.linalg.norm(trans) > 0
            assert np.allclose(motion_transform(rec).GetMatrix(), rec["matrix"])
            assert prof.misalign_deg <= 5 and prof.misalign_mm <= 5


def test_recorded_misalignment_is_what_was_applied() -> None:
    # Profile 1 with noise-free 1 mm grids, so only the applied motion (and interpolation) remains.
    iso = GridSpec((1.0, 1.0, 1.0), (216.0, 216.0, 180.0), PROFILES[1].grid("t1").direction)
    profile = dataclasses.replace(PROFILES[1], grids=dict.fromkeys(MODALITIES, iso), noise_sigma=0.0)
    moved = _case(profile, seed=2, scale=0.4)
    still = _case(dataclasses.replace(profile, misalign_mm=0.0, misalign_deg=0.0), seed=2, scale=0.4)
    for m in ("t2", "flair"):
        reference = still.images[m]
        motion = motion_transform(moved.misalignment[m])

        def rms(transform: sitk.Transform, m: str = m, reference: sitk.Image = reference) -> float:
            back = _arr(sitk.Resample(moved.images[m], reference, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
            ref = _arr(reference).astype(np.float32)
            head = ref > 0.2 * ref.max()
            return float(np.sqrt(np.mean((back[head] - ref[head]) ** 2)) / ref[head].mean())

        aligned, ignored, inverse = rms(motion), rms(sitk.Transform()), rms(motion.GetInverse())
        assert aligned < 0.4 * ignored and aligned < 0.4 * inverse, (m, aligned, ignored, inverse)


def test_make_case_is_deterministic_and_seed_sensitive() -> None:
    a, b, c = _case(2, seed=7, scale=0.3), _case(2, seed=7, scale=0.3), _case(2, seed=8, scale=0.3)
    for m in MODALITIES:
        assert np.array_equal(_arr(a.images[m]), _arr(b.images[m]))
    assert a.misalignment == b.misalignment
    assert not np.array_equal(_arr(a.label), _arr(c.label))


def test_size_scale_is_validated() -> None:
    with pytest.raises(ConfigError, match="size_scale"):
        _case(0, scale=0.01)


@pytest.mark.parametrize(
    ("layout", "names", "et"),
    [
        (Layout.BRATS2021, ["X_0000/X_0000_t1.nii.gz", "X_0000/X_0000_t1ce.nii.gz", "X_0000/X_0000_t2.nii.gz",
                            "X_0000/X_0000_flair.nii.gz", "X_0000/X_0000_seg.nii.gz"], 4),
        (Layout.BRATS2023, ["X_0000/X_0000-t1n.nii.gz", "X_0000/X_0000-t1c.nii.gz", "X_0000/X_0000-t2w.nii.gz",
                            "X_0000/X_0000-t2f.nii.gz", "X_0000/X_0000-seg.nii.gz"], 3),
        (Layout.NNUNET, [f"imagesTr/X_0000_000{i}.nii.gz" for i in range(4)] + ["labelsTr/X_0000.nii.gz"], 3),
    ],
)
def test_layouts_on_disk(tmp_path: Path, layout: Layout, names: list[str], et: int) -> None:
    write_cases(tmp_path, cases=1, profile=0, layout=layout, seed=0, size_scale=0.25, prefix="X")
    truth_name = "truth/X_0000_truth.json" if layout is Layout.NNUNET else "X_0000/X_0000_truth.json"
    mask_name = "brainmasks/X_0000.nii.gz" if layout is Layout.NNUNET else "X_0000/X_0000_brainmask.nii.gz"
    expected = {*names, truth_name, mask_name} | ({"dataset.json"} if layout is Layout.NNUNET else set())
    found = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert found == expected
    truth = json.loads((tmp_path / truth_name).read_text())
    assert truth["has_et"] and truth["label_values"]["ET"] == et
    values = set(np.unique(_arr(read_image(tmp_path / names[-1]))).tolist())
    assert values == {0, 1, 2, et}
    t1ce = read_image(tmp_path / names[1])
    assert same_grid(grid_of(t1ce), grid_of(read_image(tmp_path / names[-1])))
    assert {m: t1ce.GetSize() for m in ["t1ce"]} == {"t1ce": tuple(truth["grids"]["t1ce"]["size"])}
    if layout is Layout.NNUNET:
        ds = json.loads((tmp_path / "dataset.json").read_text())
        assert ds["channel_names"] == {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"}
        assert ds["labels"] == {"background": 0, "NCR": 1, "ED": 2, "ET": 3}
        assert ds["numTraining"] == 1 and ds["file_ending"] == ".nii.gz"


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    kwargs = {"cases": 1, "profile": 1, "layout": Layout.BRATS2023, "size_scale": 0.25}
    write_cases(tmp_path / "a", seed=4, **kwargs)
    write_cases(tmp_path / "b", seed=4, **kwargs)
    write_cases(tmp_path / "c", seed=5, **kwargs)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 7
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / files[0]).read_bytes() != (tmp_path / "c" / files[0]).read_bytes()


def test_write_cases_refuses_bad_targets(tmp_path: Path) -> None:
    target = tmp_path / "out"
    paths = write_cases(target, cases=1, profile=2, size_scale=0.2)
    assert paths == [target / "SYN2_0000"]
    with pytest.raises(DatasetError, match="already exists"):
        write_cases(target, cases=1, profile=2, size_scale=0.2)
    before = case_files(target, "SYN2_0000", Layout.BRATS2021)["t1"].read_bytes()
    write_cases(target, cases=1, profile=2, size_scale=0.2, seed=9, force=True)
    assert case_files(target, "SYN2_0000", Layout.BRATS2021)["t1"].read_bytes() != before
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="found a file"):
        write_cases(tmp_path / "file", cases=1)
    with pytest.raises(DatasetError, match="expected a layout among brats2021, brats2023, nnunet, got csv"):
        write_cases(tmp_path / "csv", cases=1, layout=Layout.CSV)
    with pytest.raises(DatasetError, match="profile"):
        write_cases(target, cases=1, profile=99)
    with pytest.raises(DatasetError, match="prefix"):
        write_cases(target, cases=1, prefix="../x")
    assert not list(target.rglob(".*.tmp"))
