"""Skull stripping: choose an extractor, run it, return a uint8 brain mask on the input grid.

``SkullStrip.AUTO`` decides in this order:

1. input that is already skull-stripped (:func:`looks_skull_stripped` on T1ce, else T1): the mask is
   the nonzero foreground (largest component, holes filled), method ``"already-stripped"``;
2. ``deepbet`` (Fisch et al., "deepbet: Fast brain extraction of T1-weighted MRI using Convolutional
   Neural Networks", Comput Biol Med 2024) when importable: it ships its weights in its wheel;
3. HD-BET (Isensee et al., Hum Brain Mapp 2019) when importable *and* its weights are already on disk;
4. the built-in classical method (:mod:`fedseg.imaging.skullstrip_classic`), no download, no atlas.

Forcing ``deepbet`` or ``hd-bet`` when it is not installed (or HD-BET has no weights) raises ImageError
saying how to install it. fedseg never downloads anything. ``SkullStrip.NONE`` returns an all-ones
mask (method ``"none"``): the whole field of view counts as brain.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError
from fedseg.imaging.config import SkullStrip
from fedseg.imaging.skullstrip_classic import classic_brain_mask, largest_component_filled

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["classic_brain_mask", "foreground_mask", "looks_skull_stripped", "strip_skull"]

log = logging.getLogger(__name__)

#: Share of voxels that must be exactly background (the minimum, normally 0) for "already stripped".
_MIN_BACKGROUND_SHARE = 0.25
#: A stripped brain's foreground lies in this volume range (ml); a head with its scalp is larger.
_BRAIN_VOLUME_ML = (300.0, 2300.0)

_INSTALL = {
    SkullStrip.DEEPBET: "pip install 'fedseg[deepbet]'",
    SkullStrip.HD_BET: "pip install 'fedseg[hd-bet]' and fetch its weights once (run `hd-bet` on any image while online)",
}


def foreground_mask(image: sitk.Image) -> sitk.Image:
    """Return the uint8 mask of voxels above the image minimum: largest component, holes filled."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(image)
    mask = largest_component_filled(arr > arr.min())
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(image)
    return out


def looks_skull_stripped(image: sitk.Image) -> bool:
    """Return whether ``image`` looks already skull-stripped, judged from its zero background.

    True when at least 25% of the voxels equal the image minimum exactly (a masked background, not
    scanner noise) and the remaining foreground (largest component, holes filled) is brain-sized,
    300-2300 ml: a head with scalp and skull is larger even when its background was zeroed.
    """
    arr = np.asarray(_view(image))
    if arr.size == 0:
        return False
    low = arr.min()
    background = arr == low
    if background.mean() < _MIN_BACKGROUND_SHARE or background.all():
        return False
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    volume = float(largest_component_filled(~background).sum()) * voxel_ml
    return _BRAIN_VOLUME_ML[0] <= volume <= _BRAIN_VOLUME_ML[1]


def _view(image: sitk.Image) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayViewFromImage(image)


def _reference(images: Mapping[str, sitk.Image]) -> sitk.Image:
    for key in ("t1ce", "t1"):
        if key in images:
            return images[key]
    raise ImageError(f"skull stripping needs a T1 or T1ce image, got modalities {sorted(images)}")


def _deepbet_available() -> bool:
    return importlib.util.find_spec("deepbet") is not None


def _hdbet_weights() -> Path | None:
    if importlib.util.find_spec("HD_BET") is None:
        return None
    try:
        from HD_BET.paths import folder_with_parameter_files  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - any import failure means "not usable", never a crash
        return None
    folder = Path(folder_with_parameter_files)
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _run_deepbet(image: sitk.Image) -> sitk.Image:
    import SimpleITK as sitk
    from deepbet import run_bet  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory(prefix="fedseg-deepbet-") as tmp:
        src, dst = Path(tmp) / "t1.nii.gz", Path(tmp) / "mask.nii.gz"
        sitk.WriteImage(image, str(src))
        run_bet([str(src)], mask_paths=[str(dst)], no_gpu=True)
        mask = sitk.ReadImage(str(dst))
    return _on_grid(mask, image)


def _run_hdbet(image: sitk.Image) -> sitk.Image:
    import SimpleITK as sitk
    from HD_BET.hd_bet_prediction import get_hdbet_predictor, hdbet_predict  # type: ignore[import-not-found]

    from fedseg.device import resolve_device

    device = resolve_device("auto")  # preprocessing takes no --device: HD-BET uses CUDA where there is one
    with tempfile.TemporaryDirectory(prefix="fedseg-hdbet-") as tmp:
        src, dst = Path(tmp) / "img.nii.gz", Path(tmp) / "out.nii.gz"
        sitk.WriteImage(image, str(src))
        predictor = get_hdbet_predictor(use_tta=False, device=device)
        hdbet_predict(str(src), str(dst), predictor, keep_brain_mask=True, compute_brain_extracted_image=False)
        mask = sitk.ReadImage(str(Path(tmp) / "out_bet.nii.gz"))
    return _on_grid(mask, image)


def _on_grid(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    import SimpleITK as sitk

    out = sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.Cast(out > 0, sitk.sitkUInt8)


def strip_skull(images: Mapping[str, sitk.Image], method: SkullStrip | str = SkullStrip.AUTO) -> tuple[sitk.Image, str]:
    """Return the brain mask (uint8 0/1 on the grid of T1ce, else T1) and the name of the method used.

    ``images`` are co-registered modalities on one grid (keys t1, t1ce, t2, flair; T1 or T1ce required).
    Deep extractors read T1 (what they were trained on), else T1ce; the classical method reads T1ce,
    else T1, with T2 and FLAIR as extra contrasts.
    """
    import SimpleITK as sitk

    try:
        method = SkullStrip(method)
    except ValueError:
        raise ImageError(f"skull-strip method must be one of {[m.value for m in SkullStrip]}, got {method!r}") from None
    ref = _reference(images)
    if method is SkullStrip.NONE:
        ones = sitk.Image(ref.GetSize(), sitk.sitkUInt8) + 1
        ones.CopyInformation(ref)
        return ones, "none"
    if method is SkullStrip.AUTO:
        if looks_skull_stripped(ref):
            return foreground_mask(ref), "already-stripped"
        if _deepbet_available():
            method = SkullStrip.DEEPBET
        elif _hdbet_weights() is not None:
            method = SkullStrip.HD_BET
        else:
            method = SkullStrip.CLASSIC
    t1_like = images.get("t1", ref)
    if method is SkullStrip.DEEPBET:
        if not _deepbet_available():
            raise ImageError(f"skull-strip method 'deepbet' is not installed: {_INSTALL[SkullStrip.DEEPBET]}")
        log.info("skull stripping with deepbet")
        return _run_deepbet(t1_like), "deepbet"
    if method is SkullStrip.HD_BET:
        if _hdbet_weights() is None:
            raise ImageError(f"skull-strip method 'hd-bet' is not installed or has no weights: {_INSTALL[SkullStrip.HD_BET]}")
        log.info("skull stripping with HD-BET")
        return _run_hdbet(t1_like), "hd-bet"
    # The classical method reads T1ce (the reference grid, interpolated least) with T2/FLAIR as the
    # contrasts that show CSF; T1 adds nothing T1ce lacks, and its bright scalp would count as "extra bright".
    extra = [images[k] for k in ("t2", "flair") if k in images]
    return classic_brain_mask(ref, extra=extra), "classic"
