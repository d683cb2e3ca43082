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
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from fedseg.synth.profiles import GridSpec

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["box_kernel", "draw_orientation", "voxel_average"]


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
