"""A realistic head: the phantom's brain inside a vault with skin, fat, temporal muscle and fatty diploe,
over a skull base with orbits and eyes, paranasal sinuses and mastoid air, a face, and a neck with
vertebrae, spinal canal and cord.

Why: a brain extractor tuned on the simple phantom (a bright scalp shell over a dark skull) can fail on
scanner heads, where fat is brighter than brain on T1 but muscle is about as dark as grey matter, the
eyes are CSF-bright on T2 just under the frontal lobes, the sinuses are dark like bone, and the
brainstem runs on into the cord. Proportions follow adult anatomy loosely (globe radius ~12 mm, scalp
skin ~2 mm and fat ~4-5 mm, temporal muscle up to ~10 mm over a thin temporal bone), scaled with the head.

Geometry: the anatomy is drawn on a 1 mm model grid in the *head frame* (u left, v posterior, w
superior; mm from the centre of the cranium) covering cranium, face and neck; a random head pose ``R``
(``Anatomy.pose_deg``, ``sitk.Euler3DTransform`` angles) puts it into physical space, physical =
``R`` @ head-frame point, which :mod:`fedseg.synth.case` applies when it renders onto the raw grids. Everything inside the inner skull surface and above the skull base (the
anterior, middle and posterior cranial fossae) is intracranial: ``Anatomy.radius`` is the deformed
radius raised where the base cuts the ellipsoid, so the brain layers of
:func:`~fedseg.synth.phantom.paint_brain` (CSF, cortex, white matter) follow the base too, and the
brainstem crosses the foramen magnum into the cord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fedseg.synth.phantom import (
    SCALP_INNER,
    SKULL_INNER,
    Anatomy,
    Tissue,
    deformed_radius,
    draw_fields,
    draw_semi_axes,
    ellipsoid,
    paint_brain,
    physical_axes,
)

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["build_realistic_anatomy"]

_SKIN_MM = 2.0
_FAT_MM = 4.5
_TEMPORAL = 0.12  # temporal muscle's largest thickness in normalised-radius units (~10 mm)
_BASE_MM = 4.0  # skull-base bone under the cranial fossae

Box = tuple[slice, slice, slice]


def _model_grid(semi: tuple[float, float, float], scale: float) -> sitk.Image:
    """Return the 1 mm head-frame grid that holds cranium, face and 80 mm of neck."""
    import SimpleITK as sitk

    a = np.asarray(semi)
    lo = np.floor([-a[0] - 12 * scale, -a[1] - 16 * scale, -a[2] - 80 * scale])
    hi = np.ceil([a[0] + 12 * scale, a[1] + 10 * scale, a[2] + 8 * scale])
    grid = sitk.Image([int(v) for v in hi - lo + 1], sitk.sitkUInt8)
    grid.SetOrigin(tuple(float(o) for o in lo))
    return grid


class _Frame:
    """Head-frame coordinates (separable: broadcastable [Z, Y, X] axes) of the model grid, and boxes of it."""

    def __init__(self, grid: sitk.Image) -> None:
        self.u, self.v, self.w = physical_axes(grid)
        self.origin = np.asarray(grid.GetOrigin())
        self.shape = tuple(int(n) for n in grid.GetSize()[::-1])
        self.bottom = float(self.origin[2])  # the lowest w on the grid (mm)

    def box(self, centre: tuple[float, ...], half: float | tuple[float, ...]) -> Box:
        """Return the [Z, Y, X] slices of the grid that hold the box ``centre`` +- ``half`` (mm)."""
        p = np.asarray(centre, dtype=float) - self.origin
        reach = np.broadcast_to(np.asarray(half, dtype=float), (3,))
        lo = np.clip(np.floor(p - reach).astype(int), 0, None)
        hi = np.ceil(p + reach).astype(int) + 1
        return tuple(slice(int(lo[k]), int(min(hi[k], self.shape[2 - k]))) for k in (2, 1, 0))  # type: ignore[return-value]

    def below(self, top: float, centre: tuple[float, float], half: tuple[float, float]) -> Box:
        """Return the box from the grid's bottom up to height ``top`` around (u, v) ``centre``."""
        return self.box((*centre, (top + self.bottom) / 2), (*half, (top - self.bottom) / 2))

    def at(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the (broadcastable) coordinates u, v, w inside ``box``."""
        return self.u[:, :, box[2]], self.v[:, box[1], :], self.w[box[0], :, :]

    def blob(self, centre: tuple[float, ...], semi: tuple[float, ...]) -> tuple[Box, np.ndarray]:
        """Return a box and the inside of the ellipsoid within it."""
        box = self.box(centre, semi)
        return box, ellipsoid(*self.at(box), centre, semi) < 1.0


def _ramp(t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip((t - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)


def _raised_radius(f: _Frame, s: np.ndarray, semi: tuple[float, float, float], scale: float) -> np.ndarray:
    """Return ``s`` raised to SKULL_INNER on the skull base, so that the radius is below it only inside the cranium.

    The base is the floor of the anterior fossa (under the frontal lobes), of the middle fossa (deeper
    laterally, under the temporal lobes) and none in the posterior fossa, whose floor is the ellipsoid's
    own. Above the floor, distance to it (mm, over the head's mean semi-axis) lowers the radius like
    distance under the inner skull surface does, up to where it no longer reaches white matter.
    """
    ax, ay, az = semi
    mean = float(np.mean(semi))
    top = -0.34 * az + 0.3 * mean
    box = f.below(top, (0.0, -3.0 * scale), (ax + 12 * scale, ay + 13 * scale))
    u, v, w = f.at(box)
    middle = np.float32(-0.45 * az) + np.float32(-0.17 * az) * _ramp(np.abs(u), 0.2 * ax, 0.3 * ax)  # [1, 1, X]
    front = _ramp(v, -0.42 * ay, -0.34 * ay)  # 0 under the frontal lobes, 1 behind the sphenoid ridge
    floor = np.float32(-0.34 * az) + (middle + np.float32(0.34 * az)) * front
    back = _ramp(v, 0.06 * ay, 0.14 * ay)  # the posterior fossa has no floor above the ellipsoid's own
    floor += (np.float32(-2.0 * az) - floor) * back
    raised = np.where(w < np.float32(top), np.float32(SKULL_INNER) - (w - floor) / np.float32(mean), np.float32(0.0))
    radius = s.copy()
    np.maximum(radius[box], raised, out=radius[box])
    return radius


def _temporal(f: _Frame, s: np.ndarray, semi: tuple[float, float, float], scale: float) -> np.ndarray:
    """Return the temporal muscle's weight (0-1): a fan over each temple."""
    ax, ay, az = semi
    out = np.zeros(s.shape, dtype=np.float32)
    for side in (-1.0, 1.0):
        box = f.box((side * (0.83 * ax + 6 * scale), -0.25 * ay, 0.0), (0.33 * ax + 6 * scale, 0.65 * ay, 0.62 * az))
        u, v, w = f.at(box)
        rho = np.maximum(s[box], np.float32(1e-3))
        nu, nv, nw = np.abs(u) / np.float32(ax) / rho, v / np.float32(ay) / rho, w / np.float32(az) / rho
        fan = _ramp(nu, 0.55, 0.8) * _ramp(nv, -0.8, -0.6) * _ramp(-nv, -0.35, -0.2) * _ramp(nw, -0.5, -0.35) * _ramp(-nw, -0.55, -0.4)
        np.maximum(out[box], fan, out=out[box])
    return out


def _surface_depth(f: _Frame, s: np.ndarray, outer: np.ndarray, semi: tuple[float, float, float]) -> np.ndarray:
    """Return the approximate depth (mm) under the skin of cranium, face, nose and neck (<= 0 outside the body)."""
    ax, ay, az = semi
    depth = (outer - s) * np.float32(np.mean(semi))
    face = ((0.0, -0.45 * ay, -0.62 * az), (0.78 * ax, 0.56 * ay, 0.5 * az))
    nose = ((0.0, -1.0 * ay, -0.66 * az), (0.11 * ax, 0.13 * ay, 0.24 * az))
    for centre, axes3 in (face, nose):
        box = f.box(centre, axes3)
        r = np.sqrt(ellipsoid(*f.at(box), centre, axes3))
        np.maximum(depth[box], (1.0 - r) * np.float32(min(axes3)), out=depth[box])
    neck_axes, neck_v, top = (0.6 * ax, 0.6 * ay), 0.12 * ay, -0.3 * az
    box = f.below(top, (0.0, neck_v), neck_axes)
    u, v, w = f.at(box)
    r = np.sqrt((u / np.float32(neck_axes[0])) ** 2 + ((v - np.float32(neck_v)) / np.float32(neck_axes[1])) ** 2)
    neck = np.where(w < np.float32(top), (1.0 - r) * np.float32(np.mean(neck_axes)), np.float32(-1.0))
    np.maximum(depth[box], neck, out=depth[box])
    return depth


def _paint_face(rng: np.random.Generator, f: _Frame, tissue: np.ndarray, intracranial: np.ndarray,
                semi: tuple[float, float, float], scale: float) -> None:
    """Paint orbits (bony wall, fat, eye), sinuses and mastoid air below the skull base (in place)."""
    ax, ay, az = semi
    for side in (-1.0, 1.0):
        eye_r = float(11.5 * scale * rng.uniform(0.93, 1.07))
        eye = (side * 0.41 * ax, -0.73 * ay, -0.34 * az - (_BASE_MM + 2.0) * scale - eye_r)
        orbit = (eye[0], eye[1] + 0.08 * ay, eye[2])
        for grow, kind in ((1.25, Tissue.SKULL), (1.0, Tissue.FAT)):
            box, inside = f.blob(orbit, (1.3 * eye_r * grow, 1.7 * eye_r * grow, 1.2 * eye_r * grow))
            tissue[box][inside & ~intracranial[box]] = kind
        box, inside = f.blob(eye, (eye_r,) * 3)
        tissue[box][inside & ~intracranial[box]] = Tissue.EYE
    sinuses = [((side * 0.33 * ax, -0.6 * ay, -0.98 * az), (0.15 * ax, 0.17 * ay, 0.2 * az)) for side in (-1.0, 1.0)]
    sinuses += [((0.0, -0.28 * ay, -0.62 * az), (0.12 * ax, 0.1 * ay, 0.1 * az))]  # sphenoid
    sinuses += [((side * 0.72 * ax, 0.12 * ay, -0.62 * az), (0.09 * ax,) * 3) for side in (-1.0, 1.0)]  # mastoid
    sinuses += [((0.0, -0.74 * ay, -0.78 * az), (0.09 * ax, 0.26 * ay, 0.28 * az))]  # nasal cavity
    sinuses += [((0.0, -0.36 * ay, -0.85 * az), (0.1 * ax, 0.13 * ay, 0.14 * az))]  # nasopharynx
    for centre, axes3 in sinuses:
        box, inside = f.blob(centre, tuple(a * float(rng.uniform(0.9, 1.1)) for a in axes3))
        region = tissue[box]
        region[inside & ~intracranial[box] & (region != Tissue.EYE) & (region != Tissue.FAT)] = Tissue.AIR
    # The frontal sinus lies within the frontal bone, above the orbits.
    box, inside = f.blob((0.0, -0.87 * ay, -0.18 * az), (0.16 * ax, 0.06 * ay, 0.1 * az))
    region = tissue[box]
    region[inside & ((region == Tissue.SKULL) | (region == Tissue.MARROW))] = Tissue.AIR
    # The airway runs down the neck in front of the spine.
    top = -0.85 * az
    box = f.below(top, (0.0, -0.32 * ay), (6.5 * scale, 6.5 * scale))
    u, v, w = f.at(box)
    region = tissue[box]
    airway = (u**2 + (v + np.float32(0.32 * ay)) ** 2 < np.float32(6.5 * scale) ** 2) & (w < np.float32(top))
    region[airway & (region == Tissue.MUSCLE)] = Tissue.AIR


def _paint_spine(f: _Frame, tissue: np.ndarray, intracranial: np.ndarray, semi: tuple[float, float, float],
                 scale: float) -> None:
    """Paint brainstem (inside the cranium), then vertebrae, spinal canal and cord below the foramen magnum."""
    ax, ay, az = semi
    k = np.float32(scale)
    axis_v = 0.1 * ay
    box = f.below(-0.1 * az, (0.0, axis_v - 8 * scale), (max(0.14 * ax, 12 * scale), max(0.12 * ay, 12 * scale) + 10 * scale))
    u, v, w = f.at(box)
    region, inside = tissue[box], intracranial[box]
    dv = v - np.float32(axis_v)
    r2 = u**2 + dv**2
    stem = (u / np.float32(0.14 * ax)) ** 2 + (dv / np.float32(0.12 * ay)) ** 2 < 1.0
    region[stem & inside & (w < np.float32(-0.1 * az))] = Tissue.WM
    low = ~inside & (w < np.float32(-0.3 * az))
    spine = low & (w < np.float32(-0.9 * az))
    body = (u / (11 * k)) ** 2 + ((dv + 17 * k) / (9 * k)) ** 2 < 1.0
    region[spine & body] = Tissue.MARROW
    region[spine & (r2 < (11.5 * k) ** 2)] = Tissue.SKULL
    region[low & (r2 < (7.5 * k) ** 2)] = Tissue.CANAL
    region[low & (r2 < np.float32(max(4.5 * scale, 1.2)) ** 2)] = Tissue.CORD


def build_realistic_anatomy(rng: np.random.Generator, *, scale: float = 1.0, pose_deg: float = 0.0) -> Anatomy:
    """Draw one realistic head (see the module docstring); the head pose turns up to ``pose_deg`` per axis."""
    semi = draw_semi_axes(rng, scale)
    angles = rng.uniform(-1.0, 1.0, size=3) * pose_deg
    grid = _model_grid(semi, scale)
    f = _Frame(grid)
    shape_field, layer_field, fold_field, texture = draw_fields(rng, grid, scale)
    s = deformed_radius(f.u, f.v, f.w, semi, shape_field)
    mean = np.float32(np.mean(semi))
    radius = _raised_radius(f, s, semi, scale)
    intracranial = radius < SKULL_INNER
    # Temporal muscle: a lateral fan over the temples, over a thinner temporal bone.
    temporal = _temporal(f, s, semi, scale)
    skull_outer = np.float32(SCALP_INNER) + np.float32(0.012) * layer_field - np.float32(0.035) * temporal
    temporal *= np.float32(_TEMPORAL)
    depth = _surface_depth(f, s, 1.0 + temporal, semi)

    tissue = np.zeros(s.shape, dtype=np.uint8)
    body = depth > 0
    tissue[body] = Tissue.MUSCLE
    skin = max(_SKIN_MM * scale, 1.0)
    fat = np.maximum(np.float32(_FAT_MM * scale) * (1.0 + np.float32(0.35) * layer_field), np.float32(1.0))
    tissue[body & (depth < skin + fat)] = Tissue.FAT
    tissue[body & (depth < skin)] = Tissue.SKIN
    tissue[(s >= skull_outer) & (s < skull_outer + temporal) & (depth >= skin + 1.0)] = Tissue.MUSCLE
    bone = (s < skull_outer) & ~intracranial & ((s >= SKULL_INNER) | (radius < SKULL_INNER + _BASE_MM / mean))
    tissue[bone] = Tissue.SKULL
    tissue[bone & (s > SKULL_INNER + 0.02) & (s < skull_outer - 0.02)] = Tissue.MARROW
    paint_brain(rng, tissue, radius, (f.u, f.v, f.w), layer_field, fold_field, scale)
    _paint_spine(f, tissue, intracranial, semi, scale)
    _paint_face(rng, f, tissue, intracranial, semi, scale)
    pose = (float(angles[0]), float(angles[1]), float(angles[2]))
    return Anatomy(grid=grid, tissue=tissue, radius=radius, texture=texture, semi_axes_mm=semi, pose_deg=pose)
