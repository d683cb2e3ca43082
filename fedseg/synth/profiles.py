"""Site profiles: what makes one synthetic hospital's scans differ from another's (non-IID federations).

A profile fixes the acquisition (voxel spacing, orientation and field of view per modality), the
scanner's intensity scale, offset, noise and bias field, how large its tumours tend to be, and how far
the non-T1ce modalities may be moved relative to T1ce. Directions are ITK row-major 3x3 matrices whose
columns are the physical (LPS) directions of the index axes i, j, k; spacing and field of view are
given per index axis. Physical sizes (field of view, tumour radii, misalignment) are for
``size_scale=1`` and shrink with it; voxel spacing does not.

Profiles 0-2 draw the simple head (:mod:`fedseg.synth.phantom`); profiles 3-5 are scanner-like: a
realistic head with face and neck (:mod:`fedseg.synth.head`) in a random pose, partial volume across
thick slices, T2/FLAIR on their own grids, <= 3 mm / 3 deg motion between sequences and random
orientation codes (:mod:`fedseg.synth.acquisition`). :meth:`SiteProfile.with_head` switches any
profile's head model (``fedseg synth --anatomy``).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from fedseg.labels import MODALITIES

__all__ = ["CORONAL", "LPS", "PROFILES", "RAS", "SAGITTAL", "GridSpec", "HeadModel", "SiteProfile"]

#: Identity direction: i→left, j→posterior, k→superior (ITK's LPS; axis codes L,P,S).
LPS: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
#: i→right, j→anterior, k→superior (axis codes R,A,S): the NIfTI/FSL radiological convention flipped.
RAS: tuple[float, ...] = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
#: Sagittal slices: i→posterior, j→inferior, k→right (an axis permutation, determinant +1).
SAGITTAL: tuple[float, ...] = (0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)
#: Coronal slices: i→left, j→inferior, k→posterior (determinant +1).
CORONAL: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)


class HeadModel(str, enum.Enum):
    """Which head a profile draws: the simple layered ellipsoid, or the realistic head with face and neck."""

    SIMPLE = "simple"
    REALISTIC = "realistic"


@dataclass(frozen=True)
class GridSpec:
    """The raw grid of one modality: spacing and field of view (mm) per index axis, and direction."""

    spacing: tuple[float, float, float]
    fov_mm: tuple[float, float, float]
    direction: tuple[float, ...] = LPS
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # field-of-view centre from the head centre (LPS)


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
    head: HeadModel = HeadModel.SIMPLE
    pose_deg: float = 0.0  # largest head rotation per Euler axis (realistic heads)
    partial_volume: bool = False  # average the model over each raw voxel (thick slices mix tissues)
    random_orientation: bool = False  # random axis signs and in-plane axis order per case and modality

    def grid(self, modality: str) -> GridSpec:
        """Return the grid of ``modality`` (one of MODALITIES)."""
        return self.grids[modality]

    def with_head(self, head: HeadModel | str) -> SiteProfile:
        """Return this profile drawing ``head``: realistic adds partial volume and a head pose (6 deg unless set)."""
        head = HeadModel(head)
        if head is self.head:
            return self
        if head is HeadModel.REALISTIC:
            return dataclasses.replace(self, head=head, partial_volume=True, pose_deg=self.pose_deg or 6.0)
        return dataclasses.replace(self, head=head, partial_volume=False, pose_deg=0.0)

    @property
    def coregistered(self) -> bool:
        """Whether all modalities share one grid and one head position (no registration needed)."""
        return self.misalign_mm == 0.0 and self.misalign_deg == 0.0

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready description (written into each case's truth file)."""
        return {
            "name": self.name,
            "description": self.description,
            "grids": {m: {"spacing": list(g.spacing), "fov_mm": list(g.fov_mm), "direction": list(g.direction),
                          "offset_mm": list(g.offset_mm)} for m, g in self.grids.items()},
            "intensity_scale": self.intensity_scale,
            "intensity_offset": self.intensity_offset,
            "noise_sigma": self.noise_sigma,
            "bias_strength": self.bias_strength,
            "tumour_radius_mm": list(self.tumour_radius_mm),
            "edema_factor": list(self.edema_factor),
            "no_et_fraction": self.no_et_fraction,
            "misalign_mm": self.misalign_mm,
            "misalign_deg": self.misalign_deg,
            "head": self.head.value,
            "pose_deg": self.pose_deg,
            "partial_volume": self.partial_volume,
            "random_orientation": self.random_orientation,
        }


def _scanner(**settings: object) -> SiteProfile:
    """Return a scanner-like profile: realistic head, partial volume, random orientation codes, <= 3 mm / 3 deg."""
    defaults: dict[str, object] = {"misalign_mm": 3.0, "misalign_deg": 3.0, "head": HeadModel.REALISTIC, "pose_deg": 8.0,
                                   "partial_volume": True, "random_orientation": True}
    return SiteProfile(**{**defaults, **settings})  # type: ignore[arg-type]


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
    3: _scanner(
        name="scanner-3d",
        description="3D sagittal 1 mm T1/T1ce with 3 mm axial T2 and FLAIR on their own grids; realistic head with "
        "face and neck; <= 3 mm / 3 deg motion, random orientation codes",
        grids={
            "t1": GridSpec((1.0, 1.0, 1.0), (240.0, 240.0, 176.0), SAGITTAL, (0.0, 0.0, -25.0)),
            "t1ce": GridSpec((1.0, 1.0, 1.0), (240.0, 240.0, 176.0), SAGITTAL, (0.0, 0.0, -25.0)),
            "t2": GridSpec((0.9, 0.9, 3.0), (216.0, 216.0, 165.0), LPS, (0.0, 0.0, -5.0)),
            "flair": GridSpec((1.0, 1.0, 3.0), (230.0, 230.0, 171.0), RAS, (0.0, 0.0, -8.0)),
        },
        intensity_scale=1200.0,
        noise_sigma=0.03,
        bias_strength=0.25,
    ),
    4: _scanner(
        name="thick-axial",
        description="2D axial 1x1x5 mm for every sequence, FLAIR 0.9x0.9x5 on its own grid; realistic head; "
        "<= 3 mm / 3 deg motion, random orientation codes",
        grids={
            **dict.fromkeys(("t1", "t1ce", "t2"), GridSpec((1.0, 1.0, 5.0), (240.0, 240.0, 170.0), RAS, (0.0, 0.0, -20.0))),
            "flair": GridSpec((0.9, 0.9, 5.0), (230.0, 230.0, 175.0), LPS, (0.0, 0.0, -12.0)),
        },
        intensity_scale=800.0,
        noise_sigma=0.04,
        bias_strength=0.35,
    ),
    5: _scanner(
        name="thin-6mm",
        description="2D axial 0.7x0.7x6 mm T1/T1ce, coronal 0.7x0.7x6 mm T2, axial 0.9x0.9x4 mm FLAIR; realistic "
        "head; strong bias and noise; <= 3 mm / 3 deg motion, random orientation codes",
        grids={
            **dict.fromkeys(("t1", "t1ce"), GridSpec((0.7, 0.7, 6.0), (220.0, 220.0, 168.0), LPS, (0.0, 0.0, -18.0))),
            "t2": GridSpec((0.7, 0.7, 6.0), (200.0, 210.0, 210.0), CORONAL, (0.0, -10.0, -10.0)),
            "flair": GridSpec((0.9, 0.9, 4.0), (220.0, 220.0, 172.0), RAS, (0.0, 0.0, -10.0)),
        },
        intensity_scale=2000.0,
        intensity_offset=10.0,
        noise_sigma=0.045,
        bias_strength=0.4,
        tumour_radius_mm=(8.0, 18.0),
        pose_deg=10.0,
    ),
}
