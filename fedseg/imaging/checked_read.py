"""Read a raw modality or label map and refuse what preprocessing cannot use, naming the file.

An image must be finite (ITK's NIfTI reader turns NaN into 0, so floating-point NIfTI files are checked
with nibabel as well) and not constant; a label map must lie on the reference modality's grid and hold
integer values its convention knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError, MetricsError
from fedseg.labels import LABEL_MAPS, LabelConvention, decide_convention, label_values

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["nonfinite_mask", "read_checked", "read_label"]


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


def read_label(path: Path, reference: sitk.Image, reference_path: Path,
                convention: LabelConvention) -> tuple[sitk.Image, LabelConvention]:
    """Read and validate a label map; an ``auto`` convention (a lone case) is decided from its values.

    Datasets decide their convention once over all cases before preprocessing (fedseg.data.label_scan).
    """
    import SimpleITK as sitk

    from fedseg.imaging.io import grid_of, read_image, same_grid

    label = read_image(path)
    lg, rg = grid_of(label), grid_of(reference)
    if not same_grid(lg, rg, tol_mm=1e-2, tol_dir=1e-3):
        raise ImageError(f"{path}: the label's grid (size {lg.size}, spacing {tuple(round(s, 4) for s in lg.spacing)}, "
                         f"origin {tuple(round(o, 2) for o in lg.origin)}) differs from the T1ce's {reference_path} "
                         f"(size {rg.size}, spacing {tuple(round(s, 4) for s in rg.spacing)}, "
                         f"origin {tuple(round(o, 2) for o in rg.origin)})")
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
    return sitk.Cast(label, sitk.sitkUInt8), convention
