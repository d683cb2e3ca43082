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

__all__ = ["HEAD_SEMI_AXES_MM", "Anatomy", "Tissue", "build_anatomy", "model_grid", "physical_axes"]

#: Head semi-axes (x left-right, y anterior-posterior, z superior-inferior) at scale 1.
HEAD_SEMI_AXES_MM = (75.0, 90.0, 70.0)

# Layer boundaries on the deformed normalised radius s (1 = skin surface).
_SCALP_INNER = 0.925
_SKULL_INNER = 0.845
_PIAL = 0.805
_GM_WM = 0.73


class Tissue(enum.IntEnum):
    """Tissue classes of the phantom; tumour classes override brain tissue."""

    AIR = 0
    SCALP = 1
    SKULL = 2
    CSF = 3
    GM = 4
    WM = 5
    NCR = 6
    ED = 7
    ET = 8


@dataclass
class Anatomy:
    """A phantom on its model grid: tissue classes, deformed radius and the fields rendering reuses."""

    grid: sitk.Image  # geometry only (1 mm, identity direction, head centre at the origin)
    tissue: np.ndarray  # uint8 [Z, Y, X] Tissue values
    radius: np.ndarray  # float32 [Z, Y, X] deformed normalised radius s
    texture: np.ndarray  # float32 [Z, Y, X] unit-std mid-frequency field for intensity texture
    semi_axes_mm: tuple[float, float, float]

    @property
    def intracranial(self) -> np.ndarray:
        """Return the ground-truth brain mask: everything inside the inner skull surface."""
        return self.radius < _SKULL_INNER

    @property
    def parenchyma(self) -> np.ndarray:
        """Return the region a tumour may occupy: inside the pial surface."""
        return self.radius < _PIAL


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


def _ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: tuple[float, float, float], semi: tuple[float, float, float]) -> np.ndarray:
    return ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((z - centre[2]) / semi[2]) ** 2


def build_anatomy(rng: np.random.Generator, *, scale: float = 1.0) -> Anatomy:
    """Draw one head: per-case axes, outline, layer thicknesses, folds and ventricles."""
    semi = tuple(float(a * scale * rng.uniform(0.93, 1.07)) for a in HEAD_SEMI_AXES_MM)
    grid = model_grid(semi, margin_mm=4.0 + 6.0 * scale)  # type: ignore[arg-type]
    x, y, z = physical_axes(grid)

    shape_field = smooth_field(rng, grid, 55.0 * scale)
    layer_field = smooth_field(rng, grid, 30.0 * scale)
    fold_field = smooth_field(rng, grid, 9.0 * max(scale, 0.5))
    texture = smooth_field(rng, grid, 6.0 * max(scale, 0.5))

    # Flatten the skull base a little (heads are not symmetric top to bottom).
    rho2 = (x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2 * np.where(z < 0, 1.15, 1.0).astype(np.float32)
    s = np.sqrt(rho2, dtype=np.float32)
    s -= np.float32(0.045) * shape_field
    fold_amp = np.float32(rng.uniform(0.035, 0.06))

    tissue = np.zeros(s.shape, dtype=np.uint8)
    tissue[s < 1.0] = Tissue.SCALP
    tissue[s < _SCALP_INNER + 0.012 * layer_field] = Tissue.SKULL
    tissue[s < _SKULL_INNER] = Tissue.CSF
    pial = _PIAL + np.float32(0.01) * layer_field
    tissue[s < pial] = Tissue.GM
    tissue[s < _GM_WM - fold_amp * fold_field] = Tissue.WM
    # Sulci: where the fold field is high, CSF cuts into the cortex from the pial surface.
    sulcus = (s < pial) & (s > pial - np.float32(0.06) * np.clip(fold_field - 0.7, 0.0, None)) & (fold_field > 0.7)
    tissue[sulcus] = Tissue.CSF

    vsize = rng.uniform(0.7, 1.4)
    for side in (-1.0, 1.0):
        centre = (side * 9.0 * scale, rng.uniform(-8, 2) * scale, 10.0 * scale)
        axes3 = (5.0 * scale * vsize, 26.0 * scale, 9.0 * scale * vsize)
        ventricle = _ellipsoid(x, y, z, centre, axes3) + np.float32(0.35) * layer_field < 1.0
        tissue[ventricle & (s < _GM_WM)] = Tissue.CSF
    return Anatomy(grid=grid, tissue=tissue, radius=s, texture=texture, semi_axes_mm=semi)  # type: ignore[arg-type]
