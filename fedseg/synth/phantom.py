"""A head phantom with smoothly deformed, per-case anatomy: scalp, skull, CSF, cortex, white matter.

The head is an ellipsoid (about 150 x 180 x 140 mm at ``scale=1``) whose radius is modulated by a
low-frequency random field (:mod:`fedseg.synth.fields`), so every case has a different, irregular
outline. Tissue layers are level sets of that deformed radius: scalp, skull, subarachnoid CSF, grey
matter and white matter, each boundary perturbed by its own field. A mid-frequency field moves the
grey/white boundary (gyri) and opens sulci (CSF cutting into the cortex from outside); two deformed
ellipsoids make the lateral ventricles. The anatomy lives on an axis-aligned 1 mm "model grid"
centred on the head at physical (0, 0, 0); :mod:`fedseg.synth.case` resamples it onto each raw grid.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedseg.synth.fields import smooth_field

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = [
    "GM_WM",
    "HEAD_SEMI_AXES_MM",
    "PIAL",
    "SCALP_INNER",
    "SIMPLE_TISSUES",
    "SKULL_INNER",
    "Anatomy",
    "Tissue",
    "build_anatomy",
    "deformed_radius",
    "draw_fields",
    "draw_semi_axes",
    "ellipsoid",
    "model_grid",
    "paint_brain",
    "physical_axes",
]

#: Head semi-axes (x left-right, y anterior-posterior, z superior-inferior) at scale 1.
HEAD_SEMI_AXES_MM = (75.0, 90.0, 70.0)

# Layer boundaries on the deformed normalised radius s (1 = skin surface).
SCALP_INNER = 0.925
SKULL_INNER = 0.845
PIAL = 0.805
GM_WM = 0.73


class Tissue(enum.IntEnum):
    """Tissue classes of the phantom; tumour classes override brain tissue.

    The classes after ET appear only in realistic heads (:mod:`fedseg.synth.head`); a simple head's
    scalp is one fat-bright SCALP layer.
    """

    AIR = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GM = 4
    WM = 5
    NCR = 6
    ED = 7
    ET = 8
    SKIN = 9
    FAT = 10  # subcutaneous and orbital fat: brighter than white matter on T1
    MUSCLE = 11  # temporal, facial and neck muscle, the default soft tissue of face and neck
    MARROW = 12  # fatty marrow: the skull's diploe, vertebral bodies
    EYE = 13  # the vitreous: dark on T1, bright on T2 like CSF
    CANAL = 14  # CSF of the spinal canal below the foramen magnum (not brain)
    CORD = 15  # the spinal cord below the foramen magnum (not brain)


#: Classes a simple head uses (its rendering draws jitter for these only, so its voxels never change).
SIMPLE_TISSUES = 9


@dataclass
class Anatomy:
    """A phantom on its model grid: tissue classes, deformed radius and the fields rendering reuses."""

    grid: sitk.Image  # geometry only (1 mm, identity direction, head centre at the origin; the head frame)
    tissue: np.ndarray  # uint8 [Z, Y, X] Tissue values
    radius: np.ndarray  # float32 [Z, Y, X] deformed normalised radius s
    texture: np.ndarray  # float32 [Z, Y, X] unit-std mid-frequency field for intensity texture
    semi_axes_mm: tuple[float, float, float]
    #: Head pose (realistic heads): the rotation R about the head centre that puts the head frame into
    #: physical space (physical = R @ head-frame point), as sitk.Euler3DTransform angles; 0 = none.
    pose_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def intracranial(self) -> np.ndarray:
        """Return the ground-truth brain mask: everything inside the inner skull surface."""
        return self.radius < SKULL_INNER

    @property
    def parenchyma(self) -> np.ndarray:
        """Return the region a tumour may occupy: inside the pial surface."""
        return self.radius < PIAL


def physical_axes(grid: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return physical x, y, z coordinates of the grid's voxels as broadcastable [Z,Y,X] arrays."""
    sx, sy, sz = grid.GetSize()
    ox, oy, oz = grid.GetOrigin()
    dx, dy, dz = grid.GetSpacing()
    x = (ox + dx * np.arange(sx, dtype=np.float32))[None, None, :]
    y = (oy + dy * np.arange(sy, dtype=np.float32))[None, :, None]
    z = (oz + dz * np.arange(sz, dtype=np.float32))[:, None, None]
    return x, y, z


def model_grid(semi_axes_mm: tuple[float, float, float], margin_mm: float) -> sitk.Image:
    """Return an empty 1 mm image covering the head plus ``margin_mm``, centred at the origin."""
    import SimpleITK as sitk

    size = [int(np.ceil(2 * (a + margin_mm))) + 1 for a in semi_axes_mm]
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing((1.0, 1.0, 1.0))
    image.SetOrigin(tuple(-(n - 1) / 2.0 for n in size))
    return image


def ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: tuple[float, ...], semi: tuple[float, ...]) -> np.ndarray:
    """Return the squared normalised radius of an axis-aligned ellipsoid (< 1 inside)."""
    return ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((z - centre[2]) / semi[2]) ** 2


def draw_semi_axes(rng: np.random.Generator, scale: float) -> tuple[float, float, float]:
    """Draw this head's semi-axes (mm): the nominal ones scaled, each jittered by +-7%."""
    return tuple(float(a * scale * rng.uniform(0.93, 1.07)) for a in HEAD_SEMI_AXES_MM)  # type: ignore[return-value]


def draw_fields(rng: np.random.Generator, grid: sitk.Image, scale: float) -> tuple[np.ndarray, ...]:
    """Draw the outline, layer, fold and texture fields (in that order) on ``grid``."""
    return (
        smooth_field(rng, grid, 55.0 * scale),
        smooth_field(rng, grid, 30.0 * scale),
        smooth_field(rng, grid, 9.0 * max(scale, 0.5)),
        smooth_field(rng, grid, 6.0 * max(scale, 0.5)),
    )


def deformed_radius(x: np.ndarray, y: np.ndarray, z: np.ndarray, semi: tuple[float, float, float], shape_field: np.ndarray) -> np.ndarray:
    """Return the normalised radius s (1 on the skin) of the deformed ellipsoid, its base a little flattened."""
    # Flatten the skull base a little (heads are not symmetric top to bottom).
    rho2 = (x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2 * np.where(z < 0, 1.15, 1.0).astype(np.float32)
    s = np.sqrt(rho2, dtype=np.float32)
    s -= np.float32(0.045) * shape_field
    return s


def paint_brain(
    rng: np.random.Generator,
    tissue: np.ndarray,
    s: np.ndarray,
    coords: tuple[np.ndarray, np.ndarray, np.ndarray],
    layer_field: np.ndarray,
    fold_field: np.ndarray,
    scale: float,
) -> None:
    """Paint CSF, cortex, white matter, sulci and ventricles where ``s`` < SKULL_INNER (in place).

    ``coords`` are the head-centred x, y, z (mm) the ventricles are placed in.
    """
    fold_amp = np.float32(rng.uniform(0.035, 0.06))
    tissue[s < SKULL_INNER] = Tissue.CSF
    pial = PIAL + np.float32(0.01) * layer_field
    tissue[s < pial] = Tissue.GM
    tissue[s < GM_WM - fold_amp * fold_field] = Tissue.WM
    # Sulci: where the fold field is high, CSF cuts into the cortex from the pial surface.
    sulcus = (s < pial) & (s > pial - np.float32(0.06) * np.clip(fold_field - 0.7, 0.0, None)) & (fold_field > 0.7)
    tissue[sulcus] = Tissue.CSF

    vsize = rng.uniform(0.7, 1.4)
    for side in (-1.0, 1.0):
        centre = (side * 9.0 * scale, rng.uniform(-8, 2) * scale, 10.0 * scale)
        axes3 = (5.0 * scale * vsize, 26.0 * scale, 9.0 * scale * vsize)
        ventricle = ellipsoid(*coords, centre, axes3) + np.float32(0.35) * layer_field < 1.0
        tissue[ventricle & (s < GM_WM)] = Tissue.CSF


def build_anatomy(rng: np.random.Generator, *, scale: float = 1.0) -> Anatomy:
    """Draw one head: per-case axes, outline, layer thicknesses, folds and ventricles."""
    semi = draw_semi_axes(rng, scale)
    grid = model_grid(semi, margin_mm=4.0 + 6.0 * scale)
    x, y, z = physical_axes(grid)
    shape_field, layer_field, fold_field, texture = draw_fields(rng, grid, scale)
    s = deformed_radius(x, y, z, semi, shape_field)

    tissue = np.zeros(s.shape, dtype=np.uint8)
    tissue[s < 1.0] = Tissue.SCALP
    tissue[s < SCALP_INNER + 0.012 * layer_field] = Tissue.SKULL
    paint_brain(rng, tissue, s, (x, y, z), layer_field, fold_field, scale)
    return Anatomy(grid=grid, tissue=tissue, radius=s, texture=texture, semi_axes_mm=semi)
