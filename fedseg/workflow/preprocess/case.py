"""Preprocess one raw case into arrays on the stored grid, with its geometry and QC figures (DESIGN.md §5).

Steps, in order (each timed in ``CaseResult.timings``):

1. ``read``      every modality (NIfTI or DICOM folder) and the label; validate: 3D, finite, not constant,
                 label integer-valued, known values for its convention, on one modality's native grid
                 (T1ce's, or the one it was drawn on: FLAIR, T1, T2). Any failure raises ImageError naming
                 the file.
2. ``reorient``  to the canonical orientation (exact axis permutation/flips, see :mod:`fedseg.imaging.orient`).
3. ``register``  every other modality rigidly onto T1ce when their grids differ
                 (:mod:`fedseg.workflow.preprocess.coregister`).
4. ``resample``  each modality ONCE onto the target-spacing grid of T1ce, the registration transform
                 composed in (linear, or B-spline), the label with nearest neighbour through the
                 transform of the modality it lies on (none for T1ce).
5. ``skullstrip`` the brain mask (``auto`` keeps already-stripped inputs).
6. ``n4``        optional bias-field correction inside the mask.
7. ``normalize`` z-score per modality inside the brain, exactly 0 outside.
8. ``crop``      to the brain's bounding box plus ``margin`` voxels, grown to contain every tumour voxel,
                 so the crop never loses a labelled voxel.

The label is stored in the internal convention (0, 1 NCR/NETC, 2 ED/SNFH, 3 ET); the raw convention is
returned so predictions can be written back as the site expects (4 or 3 for ET).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.data.discovery import RawCase
from fedseg.errors import ImageError
from fedseg.geometry import CaseGeometry
from fedseg.imaging.checked_read import read_checked, read_label
from fedseg.labels import MODALITIES, REFERENCE_MODALITY, LabelConvention, to_internal
from fedseg.workflow.preprocess.coregister import register_modalities

__all__ = ["BRAIN_ML_RANGE", "CaseResult", "preprocess_case"]

log = logging.getLogger(__name__)

#: Plausible adult brain volume (ml); outside it the case gets a QC warning.
BRAIN_ML_RANGE: tuple[float, float] = (800.0, 2000.0)
# More than this share of brain voxels beyond |z| > 6 means a heavy-tailed or corrupted intensity range.
_OUTLIER_Z = 6.0
_OUTLIER_SHARE = 0.01


@dataclass
class CaseResult:
    """One preprocessed case: ``image`` float32 [C, Z, Y, X] in MODALITIES order, ``brain_mask`` and
    ``label`` uint8 [Z, Y, X] (label internal 0..3, or None), the geometry, QC figures and warnings."""

    case_id: str
    image: np.ndarray
    brain_mask: np.ndarray
    label: np.ndarray | None
    geometry: CaseGeometry
    label_convention: str
    qc: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    """Accumulate wall-clock seconds per step."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = {}

    def step(self, name: str) -> _Step:
        return _Step(self, name)


class _Step:
    def __init__(self, timer: _Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = self.timer.clock()

    def __exit__(self, *exc: object) -> None:
        elapsed = self.timer.clock() - self.start
        self.timer.seconds[self.name] = self.timer.seconds.get(self.name, 0.0) + elapsed


def _grow_box(box: tuple[int, ...], fg: np.ndarray, margin: int) -> tuple[int, int, int, int, int, int]:
    """Return ``box`` grown to contain the nonzero voxels of ``fg`` (plus ``margin``)."""
    from fedseg.imaging.crop import bounding_box

    if not np.any(fg):
        return tuple(box)  # type: ignore[return-value]
    fb = bounding_box(fg, margin)
    return (min(box[0], fb[0]), max(box[1], fb[1]), min(box[2], fb[2]), max(box[3], fb[3]),
            min(box[4], fb[4]), max(box[5], fb[5]))


def _intensity_stats(raw: np.ndarray, z: np.ndarray, inside: np.ndarray) -> dict[str, float]:
    values = raw[inside]
    p1, p50, p99 = np.percentile(values, [1, 50, 99]) if values.size else (0.0, 0.0, 0.0)
    zin = z[inside].astype(np.float64)
    return {
        "p1": float(p1), "p50": float(p50), "p99": float(p99),
        "min": float(values.min()) if values.size else 0.0, "max": float(values.max()) if values.size else 0.0,
        "z_mean": float(zin.mean()) if zin.size else 0.0, "z_std": float(zin.std()) if zin.size else 0.0,
        "z_outlier_share": float(np.mean(np.abs(zin) > _OUTLIER_Z)) if zin.size else 0.0,
    }


def preprocess_case(
    case: RawCase,
    config: PreprocessConfig,
    *,
    brain_ml_range: tuple[float, float] = BRAIN_ML_RANGE,
    interpolator: str = "linear",
    seed: int = 0,
    label_on: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> CaseResult:
    """Run every step on ``case`` and return the arrays on the cropped grid, its geometry and QC.

    ``label_on`` names the modality the label map was drawn on when several share its grid (None: the
    order of :data:`~fedseg.imaging.checked_read.LABEL_ON_ORDER`); the choice is ``qc["label_on"]``.

    Raises ImageError (naming the file) for invalid input; other failures propagate to the caller,
    which reports the case as failed.
    """
    import SimpleITK as sitk

    from fedseg.imaging.crop import apply_box, bounding_box
    from fedseg.imaging.normalize import zscore_in_mask
    from fedseg.imaging.orient import to_canonical
    from fedseg.imaging.qc_gate import head_figures
    from fedseg.imaging.resample import reference_grid, resample_to_spacing
    from fedseg.imaging.skullstrip import DeepInput, strip_skull

    timer = _Timer(clock)
    warnings: list[str] = []
    qc: dict[str, Any] = {}

    with timer.step("read"):
        raw = {m: read_checked(case.images[m], m) for m in MODALITIES}
        original = raw[REFERENCE_MODALITY]
        label_img, convention = None, case.convention
        if case.seg is not None:
            label_img, convention, label_modality, why = read_label(case.seg, raw, case.convention, label_on=label_on)
            qc["label_on"] = {"modality": label_modality, "requested": label_on or "auto", "reason": why}
            if label_on is not None and label_modality != label_on:
                warnings.append(f"label: {why}")
        elif convention == LabelConvention.AUTO:
            convention = LabelConvention.BRATS2021  # nothing to decide from; the BraTS 2018-2022 numbering

    with timer.step("reorient"):
        canon = {m: to_canonical(img) for m, img in raw.items()}
        label_canon = to_canonical(label_img) if label_img is not None else None
    fixed = canon[REFERENCE_MODALITY]

    with timer.step("register"):
        transforms, qc["registration"], reg_warnings = register_modalities(canon, config, seed=seed)
    warnings.extend(reg_warnings)

    with timer.step("resample"):
        ref = reference_grid(fixed, config.spacing, where=str(case.images[REFERENCE_MODALITY]))
        images = {m: resample_to_spacing(canon[m], None, interpolator=interpolator, transform=transforms[m],
                                         reference=ref) for m in MODALITIES}
        # A label drawn on another modality goes through that modality's registration (nearest neighbour).
        label_res = (resample_to_spacing(label_canon, None, interpolator="nearest", reference=ref,
                                         transform=transforms[qc["label_on"]["modality"]])
                     if label_canon is not None else None)

    with timer.step("skullstrip"):
        # the deep extractors read T1 as acquired, their mask reaching the reference grid through its registration
        mask_img, method_used, qc["skull_strip_reason"] = strip_skull(
            images, config.skull_strip, deep_input=DeepInput(canon["t1"], transforms["t1"]))
        mask = sitk.GetArrayFromImage(mask_img).astype(bool)
    qc["skull_strip"] = method_used
    if "fell back" in qc["skull_strip_reason"]:
        warnings.append(f"skull stripping {qc['skull_strip_reason']}")
    if not mask.any():
        raise ImageError(f"case {case.id}: skull stripping ({method_used}) found no brain voxel")

    if config.n4:
        from fedseg.imaging.bias import n4_correct

        with timer.step("n4"):
            images = {m: n4_correct(img, mask_img) for m, img in images.items()}

    with timer.step("normalize"):
        arrays = {m: sitk.GetArrayViewFromImage(images[m]) for m in MODALITIES}
        stacked = np.zeros((len(MODALITIES), *mask.shape), dtype=np.float32)
        stats = {}
        for c, m in enumerate(MODALITIES):
            z = zscore_in_mask(arrays[m], mask)
            z[~mask] = 0.0
            stacked[c] = z
            stats[m] = _intensity_stats(arrays[m], z, mask)
    qc["intensity"] = stats

    with timer.step("crop"):
        label = to_internal(sitk.GetArrayViewFromImage(label_res), convention) if label_res is not None else None
        box = bounding_box(mask, config.margin)
        if label is not None:
            box = _grow_box(box, label > 0, config.margin)
        image_c = np.ascontiguousarray(apply_box(stacked, box))
        mask_c = np.ascontiguousarray(apply_box(mask, box)).astype(np.uint8)
        label_c = np.ascontiguousarray(apply_box(label, box)) if label is not None else None

    spacing = tuple(float(s) for s in ref.GetSpacing())
    z0, _, y0, _, x0, _ = box
    geometry = CaseGeometry(
        spacing=spacing,  # type: ignore[arg-type]
        origin=tuple(float(v) for v in ref.TransformIndexToPhysicalPoint((x0, y0, z0))),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in ref.GetDirection()),
        crop_box=tuple(int(v) for v in box),  # type: ignore[arg-type]
        resampled_size=tuple(int(v) for v in ref.GetSize()),  # type: ignore[arg-type]
        original_size=tuple(int(v) for v in original.GetSize()),  # type: ignore[arg-type]
        original_spacing=tuple(float(v) for v in original.GetSpacing()),  # type: ignore[arg-type]
        original_origin=tuple(float(v) for v in original.GetOrigin()),  # type: ignore[arg-type]
        original_direction=tuple(float(v) for v in original.GetDirection()),
    )

    voxel_ml = float(np.prod(spacing)) / 1000.0
    brain_ml = float(mask.sum()) * voxel_ml
    qc["brain_ml"] = round(brain_ml, 2)
    qc.update(head_figures(images[REFERENCE_MODALITY], mask))  # the QC gate's size-independent skull checks
    qc["shape_zyx"] = list(image_c.shape[1:])
    lo, hi = brain_ml_range
    if not lo <= brain_ml <= hi:
        warnings.append(f"implausible brain volume {brain_ml:.0f} ml (expected {lo:.0f}-{hi:.0f} ml)")
    for m, s in stats.items():
        if s["z_outlier_share"] > _OUTLIER_SHARE:
            warnings.append(f"{m}: {100 * s['z_outlier_share']:.1f}% of brain voxels beyond |z| > {_OUTLIER_Z:g} "
                            "(heavy-tailed intensity range)")
        if s["p99"] <= s["p1"]:
            warnings.append(f"{m}: no intensity range inside the brain (p1 = p99 = {s['p1']:g})")
    if label is not None:
        outside = int(np.count_nonzero((label > 0) & ~mask))
        qc["tumour_ml"] = round(float(np.count_nonzero(label)) * voxel_ml, 2)
        qc["tumour_voxels_outside_brain"] = outside
        qc["tumour_outside_share"] = round(outside / max(int(np.count_nonzero(label)), 1), 4)
        if outside:
            warnings.append(f"{outside} tumour voxels lie outside the brain mask (skull strip may be too tight)")
    log.info("case %s: %s, brain %.0f ml, %s", case.id, "x".join(map(str, image_c.shape[1:])), brain_ml, method_used)
    return CaseResult(
        case_id=case.id, image=image_c, brain_mask=mask_c, label=label_c, geometry=geometry,
        label_convention=convention.value, qc=qc, warnings=warnings, timings=timer.seconds,
    )
