"""What a scanner does to a head between the anatomy and the file: slice profiles and orientation codes.

**Partial volume.** A 2D acquisition averages the tissue across each slice's thickness (about a boxcar
slice profile), and every voxel over its in-plane size. Point-sampling a 1 mm model on a 5 mm grid would
skip that: thin layers such as the skull would appear or vanish whole. :func:`voxel_average` instead
averages the model along each physical axis over the raw voxel's extent on that axis (a box of the
exact, fractional width) before the rendering interpolates, so a thick voxel holds the mix of what it
covers.

**Orientation codes.** Sites store the same acquisition with different axis signs and in-plane axis
order (LPS, RAS, LAS, PIR, ... codes), depending on scanner and converter. :func:`draw_orientation`
flips each index axis of a grid at random and may swap its two in-plane axes (keeping spacing and
field of view with their axes), leaving the slice axis where it is.

**Head pose.** A realistic head is drawn in its own frame and posed by a rotation R
(:func:`pose_matrix`); :func:`to_model` maps a raw grid's point to the model point it shows.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from fedseg.synth.profiles import GridSpec

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["box_kernel", "draw_orientation", "pose_matrix", "to_model", "voxel_average"]


def box_kernel(width: float) -> np.ndarray:
    """Return the weights (summing to 1) of a centred box ``width`` samples wide on a unit lattice.

    Each tap gets the overlap of its cell [k - 1/2, k + 1/2] with [-width/2, width/2]: a 5-sample box
    is [1, 1, 1, 1, 1]/5, a 6-sample box [.5, 1, 1, 1, 1, 1, .5]/6.
    """
    half = width / 2.0
    reach = int(np.ceil(half - 0.5))
    k = np.arange(-reach, reach + 1, dtype=float)
    weights = np.clip(np.minimum(k + 0.5, half) - np.maximum(k - 0.5, -half), 0.0, None)
    return weights / weights.sum()


def voxel_average(values: np.ndarray, model: sitk.Image, raw: sitk.Image, *, rotation: np.ndarray | None = None,
                  min_ratio: float = 1.5) -> np.ndarray:
    """Return ``values`` ([Z, Y, X] on the axis-aligned ``model`` grid) averaged over ``raw``'s voxel extent.

    ``rotation`` is the pose that puts the model's axes into physical space (identity by default).
    ``raw``'s direction, seen from the model's axes, is taken as its nearest axis permutation (head
    poses and motions are a few degrees). Axes whose raw spacing is under ``min_ratio`` model voxels
    are left alone: the interpolation onto the raw grid already averages over about one model voxel.
    """
    direction = np.asarray(raw.GetDirection(), dtype=float).reshape(3, 3)
    if rotation is not None:
        direction = rotation.T @ direction
    direction = np.abs(direction)
    out = values
    for axis in range(3):  # model axis x, y, z
        index_axis = int(np.argmax(direction[axis]))
        ratio = raw.GetSpacing()[index_axis] / model.GetSpacing()[axis]
        if ratio >= min_ratio:
            out = ndi.correlate1d(out, box_kernel(ratio), axis=2 - axis, mode="constant", cval=0.0)
    return out


def draw_orientation(rng: np.random.Generator, spec: GridSpec) -> GridSpec:
    """Return ``spec`` with random axis signs and, half of the time, its two in-plane axes swapped."""
    direction = np.asarray(spec.direction, dtype=float).reshape(3, 3)
    spacing, fov = list(spec.spacing), list(spec.fov_mm)
    order = [0, 1, 2]
    slice_axis = int(np.argmax(spacing)) if max(spacing) > min(spacing) else 2
    plane = [a for a in order if a != slice_axis]
    if rng.uniform() < 0.5:
        order[plane[0]], order[plane[1]] = order[plane[1]], order[plane[0]]
    signs = rng.choice([-1.0, 1.0], size=3)
    columns = direction[:, order] * signs
    return dataclasses.replace(
        spec,
        spacing=tuple(spacing[a] for a in order),  # type: ignore[arg-type]
        fov_mm=tuple(fov[a] for a in order),  # type: ignore[arg-type]
        direction=tuple(float(v) + 0.0 for v in columns.ravel()),
    )


def pose_matrix(pose_deg: tuple[float, float, float]) -> np.ndarray:
    """Return the head pose R (physical = R @ head-frame point) of ``sitk.Euler3DTransform`` angles."""
    import SimpleITK as sitk

    pose = sitk.Euler3DTransform()
    pose.SetRotation(*[float(np.deg2rad(a)) for a in pose_deg])
    return np.asarray(pose.GetMatrix(), dtype=float).reshape(3, 3)


def to_model(pose_deg: tuple[float, float, float], motion: sitk.Euler3DTransform | None = None) -> sitk.Transform:
    """Return the map from a raw grid's physical point to the model-grid point it shows.

    A moved modality shows head point q at ``motion`` M(q), and the pose puts model point h at R h, so
    raw point p shows R^T M^-1(p). Without a pose this is M^-1 itself (what a simple head always used).
    """
    import SimpleITK as sitk

    inverse = motion.GetInverse() if motion is not None else sitk.Transform()
    if not any(pose_deg):
        return inverse
    rotation = pose_matrix(pose_deg)
    matrix, offset = rotation.T, np.zeros(3)
    if motion is not None:  # M^-1(p) = Rm^T (p - c - t) + c
        rm = np.asarray(motion.GetMatrix(), dtype=float).reshape(3, 3)
        c, t = np.asarray(motion.GetCenter(), dtype=float), np.asarray(motion.GetTranslation(), dtype=float)
        matrix, offset = rotation.T @ rm.T, rotation.T @ (c - rm.T @ (c + t))
    affine = sitk.AffineTransform(3)
    affine.SetMatrix([float(v) for v in matrix.ravel()])
    affine.SetTranslation([float(v) for v in offset])
    return affine
