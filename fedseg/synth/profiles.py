"""Site profiles: what makes one synthetic hospital's scans differ from another's (non-IID federations).

A profile fixes the acquisition (voxel spacing, orientation and field of view per modality), the
scanner's intensity scale, offset, noise and bias field, how large its tumours tend to be, and how far
the non-T1ce modalities may be moved relative to T1ce. Directions are ITK row-major 3x3 matrices whose
columns are the physical (LPS) directions of the index axes i, j, k; spacing and field of view are
given per index axis. Physical sizes (field of view, tumour radii, misalignment) are for
``size_scale=1`` and shrink with it; voxel spacing does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedseg.labels import MODALITIES

__all__ = ["LPS", "PROFILES", "RAS", "SAGITTAL", "GridSpec", "SiteProfile"]

#: Identity direction: i→left, j→posterior, k→superior (ITK's LPS; axis codes L,P,S).
LPS: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
#: i→right, j→anterior, k→superior (axis codes R,A,S): the NIfTI/FSL radiological convention flipped.
RAS: tuple[float, ...] = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
#: Sagittal slices: i→posterior, j→inferior, k→right (an axis permutation, determinant +1).
SAGITTAL: tuple[float, ...] = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


@dataclass(frozen=True)
class GridSpec:
    """The raw grid of one modality: spacing and field of view (mm) per index axis, and direction."""

    spacing: tuple[float, float, float]
    fov_mm: tuple[float, float, float]
    direction: tuple[float, ...] = LPS


@dataclass(frozen=True)
class SiteProfile:
    """One synthetic site's scanner and population (see the module docstring for units)."""

    name: str
    description: str
    grids: dict[str, GridSpec]
    intensity_scale: float = 1000.0
    intensity_offset: float = 0.0
    noise_sigma: float = 0.02  # Gaussian noise std relative to white-matter T1 intensity (then folded: Rician-like)
    bias_strength: float = 0.1  # amplitude of the log bias field
    tumour_radius_mm: tuple[float, float] = (8.0, 16.0)  # tumour-core radius range
    edema_factor: tuple[float, float] = (1.4, 2.1)  # whole-tumour radius / core radius
    no_et_fraction: float = 0.2  # share of cases whose core is necrosis only (no enhancing tumour)
    misalign_mm: float = 0.0  # largest translation norm of a non-T1ce modality
    misalign_deg: float = 0.0  # largest rotation angle per Euler axis of a non-T1ce modality
    fov_jitter_mm: float = 4.0  # random shift of each raw grid's centre (per modality when misaligned)

    def grid(self, modality: str) -> GridSpec:
        """Return the grid of ``modality`` (one of MODALITIES)."""
        return self.grids[modality]

    @property
    def coregistered(self) -> bool:
        """Whether all modalities share one grid and one head position (no registration needed)."""
        return self.misalign_mm == 0.0 and self.misalign_deg == 0.0

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready description (written into each case's truth file)."""
        return {
            "name": self.name,
            "description": self.description,
            "grids": {m: {"spacing": list(g.spacing), "fov_mm": list(g.fov_mm), "direction": list(g.direction)} for m, g in self.grids.items()},
            "intensity_scale": self.intensity_scale,
            "intensity_offset": self.intensity_offset,
            "noise_sigma": self.noise_sigma,
            "bias_strength": self.bias_strength,
            "tumour_radius_mm": list(self.tumour_radius_mm),
            "edema_factor": list(self.edema_factor),
            "no_et_fraction": self.no_et_fraction,
            "misalign_mm": self.misalign_mm,
            "misalign_deg": self.misalign_deg,
        }


def _same(spec: GridSpec) -> dict[str, GridSpec]:
    return {m: spec for m in MODALITIES}


PROFILES: dict[int, SiteProfile] = {
    0: SiteProfile(
        name="iso-lps",
        description="3D isotropic 1 mm, LPS, modalities already co-registered on one grid, low noise, mild bias",
        grids=_same(GridSpec((1.0, 1.0, 1.0), (176.0, 208.0, 164.0), LPS)),
        intensity_scale=1000.0,
        noise_sigma=0.02,
        bias_strength=0.1,
        tumour_radius_mm=(8.0, 16.0),
        fov_jitter_mm=3.0,
    ),
    1: SiteProfile(
        name="axial-ras",
        description="2D axial 0.9x0.9x3 mm, RAS, 3D FLAIR at 1.2 mm iso, up to 5 mm / 5 deg misalignment, large tumours",
        grids={
            "t1": GridSpec((0.9, 0.9, 3.0), (216.0, 216.0, 156.0), RAS),
            "t1ce": GridSpec((0.9, 0.9, 3.0), (216.0, 216.0, 156.0), RAS),
            "t2": GridSpec((0.9, 0.9, 3.0), (216.0, 216.0, 156.0), RAS),
            "flair": GridSpec((1.2, 1.2, 1.2), (192.0, 216.0, 168.0), RAS),
        },
        intensity_scale=3000.0,
        intensity_offset=0.0,
        noise_sigma=0.035,
        bias_strength=0.3,
        tumour_radius_mm=(12.0, 22.0),
        misalign_mm=5.0,
        misalign_deg=5.0,
    ),
    2: SiteProfile(
        name="sagittal-thick",
        description="2D sagittal 1x1x5 mm (5 mm left-right), permuted axes, strong bias and noise, small tumours",
        grids=_same(GridSpec((1.0, 1.0, 5.0), (224.0, 190.0, 170.0), SAGITTAL)),
        intensity_scale=250.0,
        intensity_offset=20.0,
        noise_sigma=0.05,
        bias_strength=0.45,
        tumour_radius_mm=(6.0, 12.0),
        edema_factor=(1.6, 2.4),
        no_et_fraction=0.3,
        misalign_mm=3.0,
        misalign_deg=3.0,
    ),
}
