"""An irregular glioma-like tumour with the three BraTS sub-regions, painted into a phantom.

The tumour is a blob around a random deep white-matter point: an anisotropic distance, divided by
``1 + a * f`` where ``f`` is a smooth random field, gives an irregular core; thresholds on that one
distance make the necrotic centre (label 1) and the enhancing rim (label 3) so NCR and ET lie inside
the core (TC) by construction. Edema (label 2) uses a second, more irregular distance and is united
with a 20% margin around the core, so TC lies inside the whole tumour (WT) and edema surrounds it. Everything is clipped to the parenchyma
(inside the pial surface), hence inside the brain mask. In a ``no_et`` case the whole core is
necrosis: the case has no enhancing tumour, like a share of real low-grade / non-enhancing cases.

Labels use the internal convention 0 background, 1 NCR/NETC, 2 ED/SNFH, 3 ET.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedseg.synth.fields import smooth_field
from fedseg.synth.phantom import Anatomy, Tissue, physical_axes

__all__ = ["TumourSpec", "paint_tumour"]


@dataclass(frozen=True)
class TumourSpec:
    """What was drawn for one tumour (physical mm on the model grid)."""

    centre_mm: tuple[float, float, float]
    core_radius_mm: float
    necrosis_radius_mm: float
    whole_radius_mm: float
    has_et: bool


def paint_tumour(
    rng: np.random.Generator,
    anatomy: Anatomy,
    *,
    core_radius_mm: float,
    edema_factor: float,
    has_et: bool,
) -> tuple[np.ndarray, TumourSpec]:
    """Write tumour tissue classes into ``anatomy.tissue`` and return the internal label map and what was drawn."""
    import SimpleITK as sitk

    tissue = anatomy.tissue
    deep = np.flatnonzero((tissue == Tissue.WM) & (anatomy.radius < 0.62))
    if deep.size == 0:  # a very small head: fall back to any white matter
        deep = np.flatnonzero(tissue == Tissue.WM)
    kz, ky, kx = (int(v) for v in np.unravel_index(deep[int(rng.integers(deep.size))], tissue.shape))
    x, y, z = physical_axes(anatomy.grid)
    centre = (float(x[0, 0, kx]), float(y[0, ky, 0]), float(z[kz, 0, 0]))

    stretch = rng.uniform(0.75, 1.3, size=3)
    necrosis_radius = core_radius_mm * float(rng.uniform(0.35, 0.65))
    whole_radius = core_radius_mm * edema_factor
    half = int(np.ceil(whole_radius * 1.6 * float(stretch.max()))) + 2
    box = tuple(slice(max(k - half, 0), min(k + half + 1, n)) for k, n in zip((kz, ky, kx), tissue.shape, strict=True))

    sub = sitk.Image([int(b.stop - b.start) for b in box[::-1]], sitk.sitkUInt8)
    sub.SetSpacing(anatomy.grid.GetSpacing())
    sub.SetOrigin((float(x[0, 0, box[2].start]), float(y[0, box[1].start, 0]), float(z[box[0].start, 0, 0])))
    bx, by, bz = x[..., box[2]], y[:, box[1]], z[box[0]]
    dist = np.sqrt(((bx - centre[0]) / stretch[0]) ** 2 + ((by - centre[1]) / stretch[1]) ** 2 + ((bz - centre[2]) / stretch[2]) ** 2)
    core_field = smooth_field(rng, sub, max(core_radius_mm * 0.8, 2.0))
    edema_field = smooth_field(rng, sub, max(core_radius_mm * 0.6, 2.0))
    d_core = dist / np.clip(1.0 + 0.22 * core_field, 0.5, None)
    d_edema = dist / np.clip(1.0 + 0.35 * edema_field, 0.4, None)

    inside = anatomy.parenchyma[box]
    core = (d_core < core_radius_mm) & inside
    necrosis = (d_core < necrosis_radius) & inside if has_et else core
    # A thin edema margin around the whole core, then the irregular edema front beyond it.
    whole = ((d_core < 1.2 * core_radius_mm) | (d_edema < whole_radius)) & inside

    label = np.zeros(tissue.shape, dtype=np.uint8)
    lab = label[box]
    lab[whole] = 2
    lab[core] = 3 if has_et else 1
    lab[necrosis] = 1
    t = tissue[box]
    t[lab == 2] = Tissue.ED
    t[lab == 3] = Tissue.ET
    t[lab == 1] = Tissue.NCR
    spec = TumourSpec(centre, float(core_radius_mm), float(necrosis_radius if has_et else core_radius_mm), float(whole_radius), has_et)
    return label, spec
