"""The QC gate's criteria on hand-made QC figures: each implausible figure gives one reason."""

from __future__ import annotations

from typing import Any

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.imaging.qc_gate import case_flags, head_figures

CONFIG = PreprocessConfig()


def _qc(**changes: Any) -> dict[str, Any]:
    qc: dict[str, Any] = {
        "skull_strip": "deepbet", "brain_ml": 1400.0, "head_ml": 3300.0, "brain_surface_on_scalp": 0.0,
        "tumour_outside_share": 0.0,
        "registration": {"t1": {"skipped": False, "rotation_deg": 2.0, "translation_mm": 3.0, "converged": True}},
        "intensity": {"t1": {"p1": 10.0, "p99": 300.0, "z_outlier_share": 0.001}},
    }
    qc.update(changes)
    return qc


def test_a_plausible_case_passes() -> None:
    assert case_flags(_qc(), CONFIG) == []


def test_a_kept_skull_is_caught_at_any_head_size() -> None:
    # a full-size head whose mask is the whole head (the 2,940-3,994 ml "brains") ...
    flags = case_flags(_qc(brain_ml=3500.0, head_ml=3550.0, brain_surface_on_scalp=1.0), CONFIG)
    assert flags == [
        "100% of the brain mask's surface lies on the scalp (expected <= 90%): the skull was probably kept (deepbet)",
        "brain mask fills 99% of the head (expected <= 97%): the skull was probably kept (deepbet)",
        "implausible brain volume 3500 ml (expected 800-2000 ml, the plan's qc_brain_ml)"]
    # ... and a reduced phantom that kept its skull: its volume is in the plan's bounds, its shape is not
    small = PreprocessConfig(qc_brain_ml=(70.0, 180.0))
    assert case_flags(_qc(brain_ml=150.0, head_ml=170.0, brain_surface_on_scalp=0.95), small) == [
        "95% of the brain mask's surface lies on the scalp (expected <= 90%): the skull was probably kept (deepbet)"]
    # a stripped phantom at 3 mm (thin scalp: its surface is often one voxel from the air) passes
    assert case_flags(_qc(brain_ml=131.0, head_ml=139.0, brain_surface_on_scalp=0.73), small) == []


def test_volume_bounds_and_methods_that_skip_the_brain_checks() -> None:
    assert case_flags(_qc(brain_ml=500.0), CONFIG) == [
        "implausible brain volume 500 ml (expected 800-2000 ml, the plan's qc_brain_ml)"]
    assert case_flags(_qc(skull_strip="none", brain_ml=4000.0, head_ml=4000.0), CONFIG) == []
    # already stripped: the head is the brain, so only the volume is checked
    assert case_flags(_qc(skull_strip="already-stripped", brain_ml=1300.0, head_ml=1300.0), CONFIG) == []


def test_tumour_registration_and_intensity_reasons() -> None:
    assert case_flags(_qc(tumour_outside_share=0.25), CONFIG) == [
        "25% of the tumour lies outside the brain mask (expected <= 10%)"]
    failed = {"flair": {"skipped": False, "failed": True, "reason": "no overlap"}}
    far = {"t2": {"skipped": False, "rotation_deg": 40.0, "translation_mm": 3.0, "converged": True}}
    assert case_flags(_qc(registration=failed), CONFIG) == ["registration of flair failed"]
    assert case_flags(_qc(registration=far), CONFIG)[0].startswith("registration moved t2 implausibly far (40.0 deg")
    flat = {"t2": {"p1": 5.0, "p99": 5.0, "z_outlier_share": 0.0}}
    spiky = {"t2": {"p1": 5.0, "p99": 50.0, "z_outlier_share": 0.08}}
    assert case_flags(_qc(intensity=flat), CONFIG) == ["t2: no intensity range inside the brain"]
    assert case_flags(_qc(intensity=spiky), CONFIG) == ["t2: 8.0% of brain voxels beyond |z| > 6 (expected <= 5%)"]


def test_head_figures_on_a_kept_skull_a_brain_and_a_mostly_empty_field() -> None:
    import numpy as np
    import SimpleITK as sitk

    z, y, x = np.indices((40, 40, 40))
    r = np.sqrt((z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2)
    head = sitk.GetImageFromArray(np.where(r < 15, 100.0, 0.0).astype(np.float32))
    head.SetSpacing((2.0, 2.0, 2.0))
    kept = head_figures(head, r < 15)
    assert kept["brain_surface_on_scalp"] == 1.0 and kept["head_ml"] > 0
    assert head_figures(head, r < 10)["brain_surface_on_scalp"] == 0.0  # 5 voxels inside the scalp
    speck = sitk.GetImageFromArray(np.pad(np.ones((2, 2, 2), np.float32), 19))  # < 2% foreground: no head
    assert head_figures(speck, sitk.GetArrayFromImage(speck) > 0) == {"head_ml": 0.0, "brain_surface_on_scalp": 0.0}
