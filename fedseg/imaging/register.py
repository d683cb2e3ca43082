"""Rigid co-registration of one MR modality onto another (Mattes mutual information, multi-resolution).

The method is the standard multi-modal rigid registration of ITK (Mattes et al., "PET-CT image
registration in the chest using free-form deformations", IEEE TMI 22(1), 2003, for the metric;
Viola & Wells, IJCV 24(2), 1997, for mutual information as a cross-contrast similarity), run on grids
prepared here rather than by ITK's own pyramid:

- both images are cut to their head's bounding box (BET's background threshold, 10% of the way from
  the 2nd to the 98th percentile, plus a 12 mm margin): air carries no information, and ITK's metric
  computes image gradients over the whole image at every level, so its cost follows the box, not the
  scanner's field of view;
- levels are isotropic grids of 4x, 2x and 1x the working spacing (default 1.5 mm; a level with fewer than 12 voxels
  along an axis is left out). Each is made from the finer one with a Gaussian of sigma
  ``0.45 * sqrt(new^2 - old^2)`` mm per axis (none along an axis already as coarse, such as a 5 mm slice
  axis), then linear resampling: the smoothing is in mm and per axis, so thin slices are not blurred
  again along their thick axis, and every level samples the thick axis as finely as the others;
- transform: Euler3D (3 rotations + 3 translations) about the fixed head box's centre, started from the
  scanner coordinates or from the head boxes' centres aligned, whichever scores better on the coarsest
  level;
- metric: Mattes mutual information (50 bins; 32 at the coarse levels) on every voxel of a coarse level
  and on a fixed random sample (seeded) of at most :data:`_SAMPLES` voxels of the finest, linear
  interpolation;
- optimizer: regular-step gradient descent per level, the first step and the smallest step shrinking
  with the level's spacing, scales from a 1 mm physical shift;
- everything runs with one ITK thread (:func:`~fedseg.imaging.threads.single_threaded`: Mattes MI adds
  its joint histogram under a lock, in scheduling order), so a seed gives the same bytes on every run
  and machine; callers that register several modalities run them side by side in threads instead.

A final guard scores the end pose against the start on the finest level's sample: an optimizer that
wandered into a worse optimum keeps the start.

The returned transform maps points of the *fixed* space into the *moving* space (ITK convention), so
``resample_to_spacing(moving, ..., transform=result.transform, reference=...)`` brings the moving image
onto the fixed image's (or any) grid in one interpolation.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError
from fedseg.imaging.io import grid_of, same_grid
from fedseg.imaging.threads import single_threaded

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["WORK_SPACING", "RegistrationResult", "grids_coincide", "register_rigid", "rotation_angle_deg"]

log = logging.getLogger(__name__)

WORK_SPACING = 1.5  # 2 mm left 0.51 mm of error on 5 mm slices; 1.5 mm keeps it under 0.5 (bench_preprocess)
_LEVELS = (4, 2, 1)  # level spacings as multiples of the working spacing, coarse to fine
_MIN_LEVEL_VOXELS = 12
_SAMPLES = 20_000  # most metric samples on a level (coarse levels use all their voxels when fewer)
_ITERATIONS = 100
_RELAXATION = 0.8  # step kept after a direction change: 0.5 halves it and stops early on a noisy metric
_MARGIN_MM = 12.0
_SIGMA_PER_MM = 0.45
_MATCH = 0.5  # thick-slice blur: sigma = _MATCH * sqrt(coarse^2 - fine^2) mm, 0.5 giving the variance s^2/4 (_pyramid)


@dataclass(frozen=True)
class RegistrationResult:
    """A rigid registration: the fixed->moving ``transform``, the final Mattes MI ``metric`` (lower is
    better, negative), its rotation angle (degrees), the displacement of the fixed image's centre
    (``translation_mm``), and whether the optimizer ``converged`` (stopped on a small step, not on the
    iteration limit, with a finite metric)."""

    transform: sitk.Transform
    metric: float
    rotation_deg: float
    translation_mm: float
    converged: bool


def grids_coincide(a: sitk.Image, b: sitk.Image) -> bool:
    """Return whether two images share one voxel grid (size, spacing, origin, direction within tolerance)."""
    return same_grid(grid_of(a), grid_of(b))


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Return the rotation angle (degrees) of a 3x3 rotation matrix, from its trace."""
    cos = (float(np.trace(matrix)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


def _centre(image: sitk.Image) -> np.ndarray:
    size = np.asarray(image.GetSize(), dtype=float)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist()))


def _head_box(image: sitk.Image) -> sitk.Image:
    """Return ``image`` (float32) cut to the bounding box of its head plus a margin (the whole image if none)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(image)
    lo, hi = np.percentile(arr[::2, ::2, ::2], [2, 98])
    fg = arr > lo + 0.1 * (hi - lo)
    if not fg.any():
        return image
    spacing = np.asarray(image.GetSpacing())[::-1]  # z, y, x
    start, stop = [], []
    for axis in range(3):
        hit = np.flatnonzero(fg.any(axis=tuple(a for a in range(3) if a != axis)))
        pad = int(math.ceil(_MARGIN_MM / spacing[axis]))
        start.append(max(0, int(hit[0]) - pad))
        stop.append(min(arr.shape[axis], int(hit[-1]) + pad + 1))
    size = [stop[a] - start[a] for a in range(3)]
    return sitk.RegionOfInterest(image, size[::-1], start[::-1])


def _axis_spacing(image: sitk.Image) -> np.ndarray:
    """Return the spacing along each physical axis (x, y, z): that of the index axis nearest to it."""
    direction = np.abs(np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))
    return np.asarray(image.GetSpacing(), dtype=float)[np.argmax(direction, axis=1)]


def _blur(image: sitk.Image, sigma_xyz: np.ndarray) -> sitk.Image:
    """Return ``image`` smoothed by a Gaussian of ``sigma_xyz`` mm along the physical axes (IIR, index axes)."""
    import SimpleITK as sitk

    direction = np.abs(np.asarray(image.GetDirection(), dtype=float).reshape(3, 3))
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    for axis in range(3):  # index axis ``axis`` runs along the physical axis where its direction column peaks
        sigma = float(sigma_xyz[int(np.argmax(direction[:, axis]))])
        # below a third of a voxel the kernel is a single tap anyway; ITK's IIR needs >= 4 voxels on the axis
        if sigma > 0.3 * spacing[axis] and image.GetSize()[axis] >= 4:
            image = sitk.RecursiveGaussian(image, sigma, False, sitk.RecursiveGaussianImageFilter.ZeroOrder, axis)
    return image


def _level(image: sitk.Image, spacing: float) -> sitk.Image:
    """Return ``image`` smoothed (sigma in mm per axis, none where it is already as coarse) on a ``spacing`` grid."""
    from fedseg.imaging.resample import reference_grid, resample_to_spacing

    old = _axis_spacing(image)
    image = _blur(image, _SIGMA_PER_MM * np.sqrt(np.maximum(spacing**2 - old**2, 0.0)))
    if np.allclose(old, spacing, atol=1e-6):
        return image
    return resample_to_spacing(image, None, interpolator="linear", reference=reference_grid(image, (spacing,) * 3))


def _pyramid(image: sitk.Image, other: sitk.Image, work_spacing: float) -> list[sitk.Image]:
    """Return the levels of ``image``, coarse to fine (at least the finest).

    Along an axis where ``other`` has coarser voxels (thick slices), ``image`` is first blurred to match
    them: a 5 mm slice sampled by linear interpolation sees a slab and a 5 mm triangle (variance
    ``s^2/12 + s^2/6 = s^2/4``), so the finer image gets the variance it lacks, and both then show the
    anatomy at one resolution instead of the metric pulling the thin one towards a partial-volume match.
    """
    import SimpleITK as sitk

    boxed = _head_box(sitk.Cast(image, sitk.sitkFloat32))
    own, theirs = _axis_spacing(image), _axis_spacing(other)
    boxed = _blur(boxed, _MATCH * np.sqrt(np.maximum(theirs**2 - own**2, 0.0)))
    finest = max(work_spacing, float(min(image.GetSpacing())))
    extent = np.asarray(boxed.GetSize()) * np.asarray(boxed.GetSpacing())
    levels = [_level(boxed, finest)]
    for factor in sorted(_LEVELS)[1:]:  # 2, 4: each coarser level from the finer one
        if np.min(extent) / (finest * factor) < _MIN_LEVEL_VOXELS:
            break
        levels.append(_level(levels[-1], finest * factor))
    return levels[::-1]


def _method(fixed: sitk.Image, *, bins: int, seed: int, lr: float, min_step: float) -> sitk.ImageRegistrationMethod:
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    voxels = float(np.prod(fixed.GetSize()))
    if voxels > _SAMPLES:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        # ITK reads seed 0 as "seed from the wall clock" (sitkWallClock): shift ours so 0 stays fixed.
        reg.SetMetricSamplingPercentage(_SAMPLES / voxels, int(seed) + 1)
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=lr, minStep=min_step, numberOfIterations=_ITERATIONS,
                                                 relaxationFactor=_RELAXATION, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    return reg


def _metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, seed: int, bins: int = 50) -> float:
    reg = _method(fixed, bins=bins, seed=seed, lr=1.0, min_step=1.0)
    reg.SetInitialTransform(transform)
    return float(reg.MetricEvaluate(fixed, moving))


def _start(fixed: sitk.Image, moving: sitk.Image, seed: int) -> sitk.Euler3DTransform:
    """Return the better start on the coarse level: the scanner coordinates, or the head boxes' centres aligned."""
    import SimpleITK as sitk

    scanner = sitk.Euler3DTransform()
    scanner.SetCenter(_centre(fixed).tolist())
    centred = sitk.Euler3DTransform(scanner)
    centred.SetTranslation((_centre(moving) - _centre(fixed)).tolist())
    scores = [_metric(fixed, moving, t, seed, bins=32) for t in (scanner, centred)]
    return scanner if scores[0] <= scores[1] else centred


def register_rigid(fixed: sitk.Image, moving: sitk.Image, *, seed: int = 0,
                   work_spacing: float = WORK_SPACING) -> RegistrationResult:
    """Register ``moving`` rigidly onto ``fixed`` and return the fixed->moving transform with figures.

    ``work_spacing`` (mm, default 1.5; levels at 6, 3, 1.5 mm) is the finest isotropic grid the registration runs on
    (never finer than the finer image's spacing); the pipeline raises it to the output spacing when that is
    coarser, since sub-voxel accuracy below the output grid buys nothing.

    Raises ImageError when either image is not 3D or has no contrast, or when ITK fails.
    """
    import SimpleITK as sitk

    for name, img in (("fixed", fixed), ("moving", moving)):
        if img.GetDimension() != 3:
            raise ImageError(f"registration expects 3D images, the {name} image is {img.GetDimension()}D")
    with single_threaded():
        spacing = max(work_spacing, float(min(min(fixed.GetSpacing()), min(moving.GetSpacing()))))
        try:
            levels_f, levels_m = _pyramid(fixed, moving, spacing), _pyramid(moving, fixed, spacing)
        except RuntimeError as exc:  # e.g. a grid too thin to smooth: ITK's message, as an ImageError
            raise ImageError(f"rigid registration failed: {str(exc).strip().splitlines()[-1][:200]}") from None
        n = min(len(levels_f), len(levels_m))
        levels_f, levels_m = levels_f[-n:], levels_m[-n:]
        for name, img in (("fixed", levels_f[-1]), ("moving", levels_m[-1])):
            arr = sitk.GetArrayViewFromImage(img)
            if not float(arr.max()) > float(arr.min()):
                raise ImageError(f"registration: the {name} image is constant (no contrast to register)")
        try:
            start = _start(levels_f[0], levels_m[0], seed)
            transform = sitk.Euler3DTransform(start)
            reg = sitk.ImageRegistrationMethod()
            for f_img, m_img in zip(levels_f, levels_m, strict=True):
                step = float(f_img.GetSpacing()[0])
                last = f_img is levels_f[-1]
                reg = _method(f_img, bins=50 if last else 32, seed=seed, lr=step, min_step=(0.002 if last else 0.02) * step)
                reg.SetInitialTransform(transform, inPlace=False)
                out = reg.Execute(f_img, m_img)
                transform = sitk.Euler3DTransform(sitk.CompositeTransform(out).GetNthTransform(0))
            # Guard: on thick-slice or low-contrast pairs the optimizer can wander off into a worse optimum.
            # Both poses are scored on every voxel of the level below the finest (ITK's MetricEvaluate
            # ignores the sampling, and the finest has millions); the start wins any tie.
            g = max(0, n - 2)
            start_metric = _metric(levels_f[g], levels_m[g], start, seed)
            end_metric = _metric(levels_f[g], levels_m[g], transform, seed)
        except RuntimeError as exc:
            raise ImageError(f"rigid registration failed: {str(exc).strip().splitlines()[-1][:200]}") from None
    wandered = end_metric > start_metric
    if wandered:
        log.warning("registration ended worse than its start (Mattes MI %.4f > %.4f); keeping the start pose",
                    end_metric, start_metric)
        transform = sitk.Euler3DTransform(start)
    matrix = np.asarray(transform.GetMatrix()).reshape(3, 3)
    centre = _centre(fixed)
    shift = float(np.linalg.norm(np.asarray(transform.TransformPoint(centre.tolist())) - centre))
    metric = min(end_metric, start_metric)
    stop = reg.GetOptimizerStopConditionDescription()
    converged = math.isfinite(metric) and "Maximum number of iterations" not in stop and not wandered
    log.debug("registration stopped after %d iterations: %s", reg.GetOptimizerIteration(), stop)
    return RegistrationResult(transform=transform, metric=metric, rotation_deg=rotation_angle_deg(matrix),
                              translation_mm=shift, converged=converged)
