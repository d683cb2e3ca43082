"""Read a raw modality or label map and refuse what preprocessing cannot use, naming the file.

An image must be finite (ITK's NIfTI reader turns NaN into 0, so floating-point NIfTI files are checked
with nibabel as well) and not constant; a label map must lie on one modality's native grid (drawn on
T1ce, or on FLAIR, T1, T2: preprocessing maps it through that modality's registration) and hold integer
values its convention knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError, MetricsError
from fedseg.labels import LABEL_MAPS, MODALITIES, REFERENCE_MODALITY, LabelConvention, decide_convention, label_values

if TYPE_CHECKING:
    import SimpleITK as sitk

    from fedseg.imaging.io import Grid

__all__ = ["LABEL_ON_ORDER", "label_modality", "nonfinite_mask", "read_checked", "read_label"]

#: Which modality a label map belongs to when several share its grid and no ``--label-on`` says: the
#: reference (T1ce) first, then T1, T2, FLAIR.
LABEL_ON_ORDER: tuple[str, ...] = (REFERENCE_MODALITY, *(m for m in MODALITIES if m != REFERENCE_MODALITY))


def nonfinite_mask(path: Path) -> np.ndarray | None:
    """Return the [Z, Y, X] mask of NaN/inf voxels stored in a floating-point NIfTI file, None for other files.

    ITK's NIfTI reader silently turns NaN into 0, so the stored values are read with nibabel.
    """
    if path.is_dir() or not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    import nibabel as nib

    try:
        img = nib.load(str(path))
        if not np.issubdtype(img.header.get_data_dtype(), np.floating):
            return None
        data = np.asanyarray(img.dataobj)
    except Exception:  # noqa: BLE001 - SimpleITK already read it; its view is checked as well
        return None
    return ~np.isfinite(data).T  # nibabel's [X, Y, Z] -> fedseg's [Z, Y, X]


def _nonfinite_in_nifti(path: Path) -> int:
    """Return the number of NaN/inf voxels stored in a floating-point NIfTI file (0 for other files)."""
    mask = nonfinite_mask(path)
    return 0 if mask is None else int(mask.sum())


def read_checked(path: Path, what: str) -> sitk.Image:
    """Read an image as float32 and reject non-finite or constant images, naming the file."""
    import SimpleITK as sitk

    from fedseg.imaging.io import read_image

    image = read_image(path)
    image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayViewFromImage(image)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr))) or _nonfinite_in_nifti(Path(path))
    if bad:
        raise ImageError(f"{path}: {what} has {bad} NaN or infinite voxels; expected finite intensities")
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        detail = "all voxels are zero" if lo == 0.0 else f"all voxels equal {lo:g}"
        raise ImageError(f"{path}: {what} has no contrast ({detail}); expected an MR image")
    return image


def _grid_text(grid: Grid) -> str:
    return (f"size {grid.size}, spacing {tuple(round(v, 4) for v in grid.spacing)}, "
            f"origin {tuple(round(v, 2) for v in grid.origin)}")


def label_modality(label: sitk.Image, path: Path, images: Mapping[str, sitk.Image],
                   label_on: str | None = None) -> tuple[str, str]:
    """Return the modality whose native grid the label map lies on, and why that one.

    Every modality on the label's grid (within 0.01 mm and 1e-3 in direction) is a candidate; ``label_on``
    picks among them when it is one, else the first in :data:`LABEL_ON_ORDER` wins (the reference first:
    a label on its grid needs no registration). A ``label_on`` that is not a candidate is overruled, and
    the reason says so. Raises ImageError, naming every grid, when the label lies on none of them.
    """
    from fedseg.imaging.io import grid_of, same_grid

    lg = grid_of(label)
    grids = {m: grid_of(images[m]) for m in LABEL_ON_ORDER if m in images}
    owners = [m for m, g in grids.items() if same_grid(lg, g, tol_mm=1e-2, tol_dir=1e-3)]
    if not owners:
        others = "; ".join(f"{m} ({_grid_text(g)})" for m, g in grids.items())
        raise ImageError(f"{path}: the label's grid ({_grid_text(lg)}) is none of the modalities' grids: {others}")
    if label_on in owners:
        shared = f", a grid shared with {', '.join(m for m in owners if m != label_on)}" if len(owners) > 1 else ""
        return label_on, f"--label-on {label_on}{shared}"
    chosen = owners[0]
    if label_on is not None:
        return chosen, f"--label-on {label_on} overruled: the label lies on the grid of {', '.join(owners)}, not {label_on}'s"
    if len(owners) > 1:
        return chosen, f"grid shared by {', '.join(owners)}: {chosen} first in the default order"
    return chosen, f"on the {chosen} grid"


def read_label(path: Path, images: Mapping[str, sitk.Image], convention: LabelConvention, *,
               label_on: str | None = None) -> tuple[sitk.Image, LabelConvention, str, str]:
    """Read and validate a label map: return it (uint8), its convention, the modality it lies on and why.

    The label must lie on one of the modalities' native grids (:func:`label_modality`); an ``auto``
    convention (a lone case) is decided from its values. Datasets decide their convention once over all
    cases before preprocessing (fedseg.data.label_scan).
    """
    import SimpleITK as sitk

    from fedseg.imaging.io import read_image

    label = read_image(path)
    modality, reason = label_modality(label, path, images, label_on)
    arr = sitk.GetArrayViewFromImage(label)
    try:
        ints = set(label_values(arr))
    except MetricsError as exc:
        raise ImageError(f"{path}: label values must be integers ({exc})") from None
    if convention == LabelConvention.AUTO:
        convention = decide_convention([ints]).convention
    allowed = set(LABEL_MAPS[convention])
    unknown = sorted(ints - allowed)
    if unknown:
        raise ImageError(f"{path}: unknown label values {unknown}; the {convention.value} convention "
                         f"allows {sorted(allowed)}")
    return sitk.Cast(label, sitk.sitkUInt8), convention, modality, reason
