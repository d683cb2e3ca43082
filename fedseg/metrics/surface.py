"""HD95: the 95th percentile of the pooled symmetric surface distances, in millimetres.

Definition (as ``medpy.metric.binary.hd95``, which we match to 1e-6 mm): the surface of a mask is the
mask minus its binary erosion with the face-connected structuring element
(``scipy.ndimage.generate_binary_structure(ndim, 1)``, medpy's default ``connectivity=1``), voxels
outside the array counting as background. For every surface voxel of one mask, the distance to the
nearest surface voxel of the other mask is the value of the exact Euclidean distance transform with
anisotropic ``sampling=spacing`` of the complement of the other surface (what medpy reads from
``scipy.ndimage.distance_transform_edt``). Both directions are pooled and the 95th percentile is
taken with NumPy's default linear interpolation (Huttenlocher et al., IEEE TPAMI 1993, for the
Hausdorff distance; the 95th-percentile variant follows the BraTS benchmark, Menze et al. 2015).

Efficiency, step 1 -- crop: erosion runs on the bounding box of the union of the two masks plus a
margin of one voxel (clipped to the array). This changes nothing: every voxel outside the box is
background in both masks, and the erosion pads the box with background (``border_value=0``), so each
voxel inside the box sees exactly the neighbours it sees in the full array; the surfaces are
identical and all lie inside the box. Any nearest-surface-voxel distance is then a distance between
two voxels inside the box, so it too is unchanged (an EDT computed on the box would be exact for the
same reason: every zero of the complement of a surface lies in the box).

Efficiency, step 2 -- distances: the EDT value at a surface voxel is, by definition, the distance to
the nearest voxel of the other surface in physical coordinates (index * spacing). We obtain exactly
that with an exact nearest-neighbour query on a k-d tree of the other surface's physical coordinates
(Bentley, CACM 1975; ``scipy.spatial.cKDTree``, ``eps=0``), which costs O(s log s) in the number of
surface voxels s (tens of thousands) instead of a transform over the whole box (millions of voxels for
a whole tumour) -- 3-5x less time for the same numbers. Voxels on both surfaces are at distance 0
and are not queried. No pairwise distance matrix is ever built.

``spacing`` is always in the ARRAY's axis order: fedseg arrays are [Z, Y, X], so spacing is
(sz, sy, sx) -- the reverse of SimpleITK's ``GetSpacing()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from fedseg.errors import MetricsError
from fedseg.metrics.empty import EmptyPolicy

__all__ = ["bounding_box", "hd95", "image_diagonal_mm", "surface_distances"]


def hd95(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, empty: EmptyPolicy = EmptyPolicy.BRATS
) -> float:
    """Return the 95th-percentile symmetric surface distance in mm between two masks.

    ``spacing`` is in array axis order ((sz, sy, sx) for [Z, Y, X] arrays). Both masks empty: 0
    (``brats``) or NaN (``nan``); exactly one empty: the image diagonal in mm (``brats``) or NaN.
    """
    p, r = np.asarray(pred).astype(bool, copy=False), np.asarray(ref).astype(bool, copy=False)
    if p.shape != r.shape:
        raise MetricsError(f"prediction and reference masks must have one shape, found {p.shape} and {r.shape}")
    sp = _check_spacing(spacing, p.ndim)
    box = bounding_box(p | r, margin=1)
    if box is None:
        return hd95_empty(both_empty=True, shape=p.shape, spacing=sp, empty=empty)
    return hd95_cropped(p[box], r[box], sp, full_shape=p.shape, empty=empty)


def hd95_cropped(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    *,
    full_shape: Sequence[int],
    empty: EmptyPolicy,
) -> float:
    """Return HD95 of masks already cropped to (a superset of) the box of their union plus one voxel.

    ``full_shape`` is the shape of the uncropped image, used for the one-empty diagonal.
    """
    has_p, has_r = bool(pred.any()), bool(ref.any())
    if not (has_p and has_r):
        return hd95_empty(both_empty=not (has_p or has_r), shape=full_shape, spacing=spacing, empty=empty)
    box = bounding_box(pred | ref, margin=1)  # a sub-region (TC, ET) may need a much smaller box than WT
    assert box is not None
    d_pr, d_rp = surface_distances(pred[box], ref[box], spacing)
    return float(np.percentile(np.concatenate([d_pr, d_rp]), 95))


def hd95_empty(*, both_empty: bool, shape: Sequence[int], spacing: Sequence[float], empty: EmptyPolicy) -> float:
    """Return HD95 when a mask is empty: 0 / diagonal (``brats``) or NaN (``nan``)."""
    if EmptyPolicy(empty) is EmptyPolicy.NAN:
        return math.nan
    return 0.0 if both_empty else image_diagonal_mm(shape, spacing)


def surface_distances(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Return (pred-surface -> ref-surface, ref-surface -> pred-surface) distances in mm, unordered.

    Both masks must be non-empty. Each value equals the exact EDT (``sampling=spacing``) of the
    complement of the other surface read at that surface voxel, as medpy computes it; see the module
    docstring for how it is obtained without a full-box transform. Work on a crop for speed.
    """
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    sampling = np.asarray(spacing, dtype=np.float64)
    p_surf = pred & ~ndimage.binary_erosion(pred, structure=structure, iterations=1, border_value=0)
    r_surf = ref & ~ndimage.binary_erosion(ref, structure=structure, iterations=1, border_value=0)
    shared = int(np.count_nonzero(p_surf & r_surf))  # voxels on both surfaces are at distance 0
    return (
        _nearest(p_surf & ~r_surf, r_surf, sampling, shared),
        _nearest(r_surf & ~p_surf, p_surf, sampling, shared),
    )


def _nearest(queries: np.ndarray, targets: np.ndarray, sampling: np.ndarray, zeros: int) -> np.ndarray:
    """Return ``zeros`` zeros followed by the distance (mm) from each ``queries`` voxel to the nearest ``targets`` voxel."""
    from scipy.spatial import cKDTree

    q = np.argwhere(queries)
    if q.size == 0:
        return np.zeros(zeros)
    tree = cKDTree(np.argwhere(targets) * sampling, balanced_tree=False, compact_nodes=False)
    d, _ = tree.query(q * sampling, k=1)
    return np.concatenate([np.zeros(zeros), d])


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Return sqrt(sum((shape * spacing)^2)), the image diagonal in mm (373.13 for 240x240x155 at 1 mm)."""
    return float(math.sqrt(sum((float(n) * float(s)) ** 2 for n, s in zip(shape, spacing, strict=True))))


def bounding_box(mask: np.ndarray, *, margin: int = 0) -> tuple[slice, ...] | None:
    """Return slices of the bounding box of ``mask`` grown by ``margin`` (clipped), or None when empty."""
    slices = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        nz = np.flatnonzero(mask.any(axis=others) if others else mask)
        if nz.size == 0:
            return None
        slices.append(slice(max(int(nz[0]) - margin, 0), min(int(nz[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(slices)


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim or not all(math.isfinite(s) and s > 0 for s in sp):
        raise MetricsError(f"expected {ndim} positive finite spacings in array axis order, found {tuple(spacing)}")
    return sp
