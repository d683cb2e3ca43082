"""The QC gate: decide from a case's QC figures whether it is plausible enough to use without a review.

A flagged case is still written, but :class:`~fedseg.data.dataset.SiteDataset` leaves it out of every
split until a person accepts it (``fedseg preprocess ... --accept CASE_ID``, or ``"accepted": true`` on
its entry in ``dataset.json``). Criteria, each a reason string when it fails:

* **the skull was kept** (independent of head size, so a site whose every case kept its skull is caught,
  not only outliers among its cases), from the head mask (the reference image's foreground: BET's 10%
  threshold, largest component, holes filled):

  - *shape*: the share of the brain mask's surface voxels on the head's outer voxel layer (or in the
    air): a brain inside its skull keeps away from the scalp surface (0.03 on the ITK head; <= 0.73 on the
    demo's phantoms at 0.45 scale and 3 mm, where scalp and skull are under two voxels thick); a mask
    that kept the scalp lies on it (1.0). Flagged above ``qc_max_scalp_contact`` (0.9);
  - *volume share*: the brain mask's volume over the head's (0.53 on the ITK head, 0.56-0.82 on synth
    heads, <= 0.96 for the classical method on the demo's phantoms; 1.0 with the skull). Flagged above
    ``qc_max_brain_share`` (0.97).

  Not checked when skull stripping is ``none`` (the user declared the field of view to be brain) or
  the input was already stripped (then the head *is* the brain).
* **absolute brain volume** within ``PreprocessConfig.qc_brain_ml`` (real adult anatomy by default; a
  plan for reduced phantoms sets its own bounds). Not checked when skull stripping is ``none``.
* **tumour outside the brain**: more than :data:`MAX_TUMOUR_OUTSIDE` of the tumour's voxels.
* **registration**: a failed registration, or one that moved a modality implausibly far.
* **intensity**: no range inside the brain (p1 = p99), or more than :data:`MAX_OUTLIER_SHARE` of brain
  voxels beyond |z| > 6 (a corrupted or heavy-tailed intensity range).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fedseg.errors import ImageError

if TYPE_CHECKING:
    import SimpleITK as sitk

    from fedseg.configs.preprocess import PreprocessConfig

__all__ = ["MAX_OUTLIER_SHARE", "MAX_TUMOUR_OUTSIDE", "case_flags", "head_figures"]

MAX_TUMOUR_OUTSIDE = 0.10
MAX_OUTLIER_SHARE = 0.05
MAX_ROTATION_DEG = 15.0
MAX_TRANSLATION_MM = 20.0


def head_figures(reference: sitk.Image, brain: np.ndarray) -> dict[str, float]:
    """Return the head's volume (ml) in ``reference`` and the share of the brain mask's surface that
    lies on the head's outer surface (within one voxel): ~1 for a mask that kept the scalp, ~0 for a
    brain inside its skull, at any head size."""
    import SimpleITK as sitk
    from scipy import ndimage as ndi

    from fedseg.imaging.skullstrip_classic import head_mask

    try:
        head = head_mask(np.asarray(sitk.GetArrayViewFromImage(reference), dtype=np.float32))
    except ImageError:  # no contrast between the 2nd and 98th percentile: no head to measure, no check
        return {"head_ml": 0.0, "brain_surface_on_scalp": 0.0}
    voxel_ml = float(np.prod(reference.GetSpacing())) / 1000.0
    outside = ndi.binary_dilation(~head)  # the air and the head's outermost voxel layer
    surface = brain & ~ndi.binary_erosion(brain)
    contact = float((surface & outside).sum()) / max(float(surface.sum()), 1.0)
    return {"head_ml": round(float(head.sum()) * voxel_ml, 2), "brain_surface_on_scalp": round(contact, 4)}


def _registration_flags(registration: Mapping[str, Mapping[str, Any]]) -> list[str]:
    flags = []
    for m, r in sorted(registration.items()):
        if r.get("failed"):
            flags.append(f"registration of {m} failed")
        elif not r.get("skipped") and (r.get("rotation_deg", 0.0) > MAX_ROTATION_DEG
                                       or r.get("translation_mm", 0.0) > MAX_TRANSLATION_MM):
            flags.append(f"registration moved {m} implausibly far ({r['rotation_deg']:.1f} deg, "
                         f"{r['translation_mm']:.1f} mm; expected <= {MAX_ROTATION_DEG:g} deg, "
                         f"<= {MAX_TRANSLATION_MM:g} mm)")
    return flags


def case_flags(qc: Mapping[str, Any], config: PreprocessConfig) -> list[str]:
    """Return the reasons ``qc`` (a case's QC figures from the pipeline) is implausible; empty if none."""
    flags: list[str] = []
    method = qc.get("skull_strip")
    brain = float(qc.get("brain_ml", 0.0))
    head = float(qc.get("head_ml", 0.0))
    if method not in ("none", "already-stripped") and head > 0:
        contact, share = float(qc.get("brain_surface_on_scalp", 0.0)), brain / head
        if contact > config.qc_max_scalp_contact:
            flags.append(f"{100 * contact:.0f}% of the brain mask's surface lies on the scalp (expected <= "
                         f"{100 * config.qc_max_scalp_contact:.0f}%): the skull was probably kept ({method})")
        if share > config.qc_max_brain_share:
            flags.append(f"brain mask fills {100 * share:.0f}% of the head (expected <= "
                         f"{100 * config.qc_max_brain_share:.0f}%): the skull was probably kept ({method})")
    lo, hi = config.qc_brain_ml
    if method != "none" and not lo <= brain <= hi:
        flags.append(f"implausible brain volume {brain:.0f} ml (expected {lo:g}-{hi:g} ml, the plan's qc_brain_ml)")
    outside = float(qc.get("tumour_outside_share", 0.0))
    if outside > MAX_TUMOUR_OUTSIDE:
        flags.append(f"{100 * outside:.0f}% of the tumour lies outside the brain mask "
                     f"(expected <= {100 * MAX_TUMOUR_OUTSIDE:.0f}%)")
    flags += _registration_flags(qc.get("registration", {}))
    for m, s in sorted(qc.get("intensity", {}).items()):
        if s["p99"] <= s["p1"]:
            flags.append(f"{m}: no intensity range inside the brain")
        elif s["z_outlier_share"] > MAX_OUTLIER_SHARE:
            flags.append(f"{m}: {100 * s['z_outlier_share']:.1f}% of brain voxels beyond |z| > 6 "
                         f"(expected <= {100 * MAX_OUTLIER_SHARE:.0f}%)")
    return flags
