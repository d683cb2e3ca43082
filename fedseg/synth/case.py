"""Make one synthetic multi-modal case: anatomy, tumour, and each modality rendered on its raw grid.

Geometry conventions (all physical coordinates are ITK LPS, mm):

- The anatomy is drawn on an axis-aligned 1 mm model grid centred on the head at (0, 0, 0).
- T1ce defines the reference: its raw grid carries the label map, the brain mask and the tissue map,
  and its head is not moved.
- Every other modality ``m`` may be moved by a rigid motion ``M_m(q) = R (q - c) + c + t`` (rotation
  ``R`` about the head centre ``c``, translation ``t``): the head point seen at ``q`` in T1ce space is
  seen at ``M_m(q)`` in modality ``m``. ``M_m`` is exactly the fixed-to-moving transform a SimpleITK
  registration with fixed=T1ce and moving=m should recover, i.e. ``m(M_m(q)) ~ t1ce(q)``.
  ``rotation_deg`` are the angles of ``sitk.Euler3DTransform`` (default ZXY order, ``ComputeZYX`` off);
  ``matrix`` is ``R`` row-major, so nobody has to trust the angle convention.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fedseg.labels import MODALITIES, REFERENCE_MODALITY
from fedseg.synth.acquisition import draw_orientation, pose_matrix, to_model, voxel_average
from fedseg.synth.contrast import tissue_table
from fedseg.synth.head import build_realistic_anatomy
from fedseg.synth.phantom import SIMPLE_TISSUES, Anatomy, Tissue, build_anatomy, physical_axes
from fedseg.synth.profiles import GridSpec, HeadModel, SiteProfile
from fedseg.synth.tumour import TumourSpec, paint_tumour

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["SynthCase", "make_case", "motion_transform"]

_NOMINAL_WM = 0.66  # T1 white-matter level that noise_sigma is relative to


@dataclass
class SynthCase:
    """One synthetic case in memory (see the module docstring for the geometry conventions).

    ``images`` are int16 scans with skull on each modality's raw grid; ``label`` (uint8, internal
    0/1/2/3), ``brain_mask`` (uint8 0/1, everything inside the inner skull surface) and ``tissue``
    (uint8 :class:`~fedseg.synth.phantom.Tissue`) are on the T1ce grid.
    """

    case_id: str
    profile: SiteProfile
    images: dict[str, sitk.Image]
    label: sitk.Image
    brain_mask: sitk.Image
    tissue: sitk.Image
    misalignment: dict[str, dict[str, list[float]]]
    has_et: bool
    tumour: TumourSpec
    extra: dict[str, Any] = field(default_factory=dict)


def motion_transform(record: dict[str, list[float]]) -> sitk.Euler3DTransform:
    """Return the rigid motion ``M_m`` (fixed T1ce point -> moving modality point) of a misalignment record."""
    import SimpleITK as sitk

    transform = sitk.Euler3DTransform()
    transform.SetCenter([float(v) for v in record["center_mm"]])
    transform.SetRotation(*[float(np.deg2rad(v)) for v in record["rotation_deg"]])
    transform.SetTranslation([float(v) for v in record["translation_mm"]])
    return transform


def _draw_motion(rng: np.random.Generator, profile: SiteProfile, scale: float) -> dict[str, list[float]]:
    """Draw a rotation (each Euler angle within ±misalign_deg/√3) and a translation (norm <= misalign_mm)."""
    angles = rng.uniform(-1.0, 1.0, size=3) * profile.misalign_deg / np.sqrt(3.0)
    direction = rng.standard_normal(3)
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    translation = direction * rng.uniform(0.4, 1.0) * profile.misalign_mm * min(scale, 1.0)
    record = {"rotation_deg": [float(a) for a in angles], "translation_mm": [float(t) for t in translation], "center_mm": [0.0, 0.0, 0.0]}
    record["matrix"] = [float(v) for v in motion_transform(record).GetMatrix()]
    return record


def _raw_grid(spec: GridSpec, centre: np.ndarray, scale: float, *, snap_to: sitk.Image) -> sitk.Image:
    """Return an empty image with the raw grid ``spec`` centred near ``centre`` (LPS mm).

    A grid with the model grid's spacing and direction is moved (< 1 voxel) onto the model lattice, so
    rendering it is an exact copy instead of an interpolation.
    """
    import SimpleITK as sitk

    centre = centre + np.asarray(spec.offset_mm, dtype=float) * scale
    spacing = np.asarray(spec.spacing, dtype=float)
    size = [max(int(round(f * scale / s)), 8) for f, s in zip(spec.fov_mm, spec.spacing, strict=True)]
    direction = np.asarray(spec.direction, dtype=float).reshape(3, 3)
    origin = centre - direction @ (spacing * (np.asarray(size) - 1) / 2.0)
    if np.allclose(spacing, snap_to.GetSpacing()) and np.allclose(spec.direction, snap_to.GetDirection()):
        lattice = np.asarray(snap_to.GetOrigin())
        origin = lattice + np.rint((origin - lattice) / spacing) * spacing
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in spec.direction))
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def _bias_factors(rng: np.random.Generator, anatomy: Anatomy, strength: float, *, reach: float | None = None) -> list[np.ndarray]:
    """Return a smooth multiplicative bias field as three broadcastable factors (exp of a separable quadratic).

    ``reach`` holds the field constant beyond that many semi-axes from the head centre: a coil's
    sensitivity does not grow without bound down a neck (None: no limit, as simple heads always drew).
    """
    factors = []
    for axis, semi in zip(physical_axes(anatomy.grid), anatomy.semi_axes_mm, strict=True):
        t = axis / np.float32(semi)
        if reach is not None:
            t = np.clip(t, -reach, reach)
        a, b = rng.uniform(-1.0, 1.0, size=2)
        factors.append(np.exp(np.float32(strength) * (np.float32(a) * t + np.float32(0.5 * b) * t * t)).astype(np.float32))
    return factors


def _integer_shift(source: sitk.Image, target: sitk.Image, transform: sitk.Transform) -> tuple[int, int, int] | None:
    """Return the voxel offset of ``target`` in ``source`` when resampling is a pure shift, else None."""
    if transform.GetParameters() and any(abs(v) > 0 for v in transform.GetParameters()):
        return None
    if not (np.allclose(source.GetSpacing(), target.GetSpacing()) and np.allclose(source.GetDirection(), target.GetDirection())):
        return None
    if not np.allclose(source.GetDirection(), np.eye(3).ravel()):
        return None
    offset = (np.asarray(target.GetOrigin()) - np.asarray(source.GetOrigin())) / np.asarray(source.GetSpacing())
    if not np.allclose(offset, np.rint(offset), atol=1e-6):
        return None
    return tuple(int(v) for v in np.rint(offset))  # type: ignore[return-value]


def _shifted(array: np.ndarray, offset_xyz: tuple[int, int, int], size_xyz: tuple[int, ...]) -> np.ndarray:
    """Copy ``array`` [Z,Y,X] into a zero array of ``size_xyz`` whose voxel 0 is ``offset_xyz`` in ``array``."""
    out = np.zeros(tuple(size_xyz[::-1]), dtype=array.dtype)
    src, dst = [], []
    for off, n_out, n_in in zip(offset_xyz[::-1], size_xyz[::-1], array.shape, strict=True):
        lo, hi = max(off, 0), min(off + n_out, n_in)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - off, hi - off))
    out[tuple(dst)] = array[tuple(src)]
    return out


def _resample_array(array: np.ndarray, source: sitk.Image, target: sitk.Image, transform: sitk.Transform, *, linear: bool) -> np.ndarray:
    """Resample a [Z,Y,X] array on ``source``'s grid onto ``target`` (output point p reads input ``transform(p)``)."""
    import SimpleITK as sitk

    shift = _integer_shift(source, target, transform)
    if shift is not None:  # same lattice: a copy is exact and much cheaper than an interpolator
        return _shifted(array, shift, target.GetSize())
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(source)
    pixel = sitk.sitkFloat32 if linear else sitk.sitkUInt8
    method = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.GetArrayFromImage(sitk.Resample(image, target, transform, method, 0.0, pixel))


def _render(
    rng: np.random.Generator,
    anatomy: Anatomy,
    texture: np.ndarray,
    modality: str,
    profile: SiteProfile,
    grid: sitk.Image,
    motion: sitk.Euler3DTransform,
) -> sitk.Image:
    """Render ``modality`` on the model grid, move and resample it onto its raw grid, add noise, scale to int16."""
    import SimpleITK as sitk

    table = tissue_table(rng, modality, tissues=SIMPLE_TISSUES if profile.head is HeadModel.SIMPLE else len(Tissue))
    values = table[anatomy.tissue]
    values *= texture
    reach = None if profile.head is HeadModel.SIMPLE else 1.0
    for factor in _bias_factors(rng, anatomy, profile.bias_strength, reach=reach):
        values *= factor
    if profile.partial_volume:
        values = voxel_average(values, anatomy.grid, grid, rotation=pose_matrix(anatomy.pose_deg))
    # Resampling maps output points to input points, so the inverse motion puts head point q at M(q).
    array = _resample_array(values, anatomy.grid, grid, to_model(anatomy.pose_deg, motion), linear=True)
    noise = rng.standard_normal(array.shape, dtype=np.float32)
    noise *= np.float32(profile.noise_sigma * _NOMINAL_WM)
    array += noise
    np.abs(array, out=array)  # folded Gaussian: a cheap stand-in for Rician magnitude noise
    array *= np.float32(profile.intensity_scale)
    array += np.float32(profile.intensity_offset)
    np.rint(array, out=array)
    np.clip(array, -32768, 32767, out=array)
    out = sitk.GetImageFromArray(array.astype(np.int16))
    out.CopyInformation(grid)
    return out


_LABEL_OF_TISSUE = np.zeros(len(Tissue), dtype=np.uint8)
_LABEL_OF_TISSUE[[Tissue.NCR, Tissue.ED, Tissue.ET]] = (1, 2, 3)
_BRAIN_OF_TISSUE = np.zeros(len(Tissue), dtype=np.uint8)
_BRAIN_OF_TISSUE[[Tissue.CSF, Tissue.GM, Tissue.WM, Tissue.NCR, Tissue.ED, Tissue.ET]] = 1


def _from_lookup(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.uint8))
    image.CopyInformation(like)
    return image


def make_case(rng: np.random.Generator, profile: SiteProfile, *, case_id: str, size_scale: float = 1.0) -> SynthCase:
    """Make one case: a new head, a tumour, and T1/T1ce/T2/FLAIR scans on the profile's raw grids.

    The generator ``rng`` is consumed in a fixed order, so the same seed gives identical voxels.
    """
    import SimpleITK as sitk

    if not 0.1 <= size_scale <= 2.0:
        from fedseg.errors import ConfigError

        raise ConfigError(f"synth case {case_id}: size_scale must lie in 0.1..2, got {size_scale}")
    if profile.head is HeadModel.REALISTIC:
        anatomy = build_realistic_anatomy(rng, scale=size_scale, pose_deg=profile.pose_deg)
    else:
        anatomy = build_anatomy(rng, scale=size_scale)
    has_et = bool(rng.uniform() >= profile.no_et_fraction)
    core_radius = float(rng.uniform(*profile.tumour_radius_mm)) * size_scale
    label, spec = paint_tumour(
        rng, anatomy, core_radius_mm=core_radius, edema_factor=float(rng.uniform(*profile.edema_factor)), has_et=has_et
    )

    case_centre = rng.uniform(-1.0, 1.0, size=3) * profile.fov_jitter_mm * size_scale
    misalignment: dict[str, dict[str, list[float]]] = {}
    images: dict[str, sitk.Image] = {}
    grids: dict[str, sitk.Image] = {}
    for modality in MODALITIES:
        record = _draw_motion(rng, profile, size_scale)
        own_shift = rng.uniform(-1.0, 1.0, size=3) * profile.fov_jitter_mm * size_scale
        if modality == REFERENCE_MODALITY or profile.coregistered:
            record = {"rotation_deg": [0.0, 0.0, 0.0], "translation_mm": [0.0, 0.0, 0.0], "center_mm": [0.0, 0.0, 0.0], "matrix": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]}
            own_shift = np.zeros(3)
        misalignment[modality] = record
        grid_spec = profile.grid(modality)
        if profile.random_orientation:
            grid_spec = draw_orientation(rng, grid_spec)
        grids[modality] = _raw_grid(grid_spec, case_centre + own_shift, size_scale, snap_to=anatomy.grid)
    texture = np.float32(1.0) + np.float32(0.04) * anatomy.texture
    for modality in MODALITIES:
        images[modality] = _render(rng, anatomy, texture, modality, profile, grids[modality], motion_transform(misalignment[modality]))

    # One nearest-neighbour resampling of the tissue map gives label and brain mask by lookup: tumour
    # classes are the label, and everything inside the inner skull surface is CSF, brain or tumour.
    reference = grids[REFERENCE_MODALITY]
    tissue_array = _resample_array(anatomy.tissue, anatomy.grid, reference, to_model(anatomy.pose_deg), linear=False)
    tissue = _from_lookup(tissue_array, reference)
    label_image = _from_lookup(_LABEL_OF_TISSUE[tissue_array], tissue)
    if profile.partial_volume:  # a thick voxel is brain when brain fills at least half of it
        share = voxel_average(anatomy.intracranial.astype(np.float32), anatomy.grid, reference, rotation=pose_matrix(anatomy.pose_deg))
        brain = _from_lookup(_resample_array(share, anatomy.grid, reference, to_model(anatomy.pose_deg), linear=True) >= 0.5, tissue)
    else:
        brain = _from_lookup(_BRAIN_OF_TISSUE[tissue_array], tissue)
    has_et_raw = bool((sitk.GetArrayViewFromImage(label_image) == 3).any())
    del label  # same content as the tumour classes of the tissue map
    if any(anatomy.pose_deg):  # the tumour was drawn in the head frame: record where it is
        spec = dataclasses.replace(spec, centre_mm=tuple(float(v) for v in pose_matrix(anatomy.pose_deg) @ np.asarray(spec.centre_mm)))
    return SynthCase(
        case_id=case_id,
        profile=profile,
        images=images,
        label=label_image,
        brain_mask=brain,
        tissue=tissue,
        misalignment=misalignment,
        has_et=has_et_raw,
        tumour=spec,
        extra={"head_semi_axes_mm": list(anatomy.semi_axes_mm), "size_scale": size_scale,
               **({"head_pose_deg": list(anatomy.pose_deg)} if profile.head is HeadModel.REALISTIC else {})},
    )
