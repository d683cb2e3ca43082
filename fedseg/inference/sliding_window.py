"""Sliding-window prediction of a whole volume with Gaussian-weighted blending.

The volume is tiled with windows of the training patch size placed as in nnU-Net (Isensee et al.,
"nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation", Nature
Methods 2021): the step is ``(1 - overlap) * patch`` at most, rounded so the first window starts at 0
and the last one ends at the volume's edge. Volumes smaller than the window are zero-padded (the
preprocessed images are zero outside the brain, so zero is "background") and cropped back afterwards.

Blending: every window's **logits** are multiplied by a Gaussian importance map (sigma = 1/8 of the
window per axis, floor 1e-3, as in nnU-Net and MONAI's ``mode="gaussian"``) and accumulated together with
the map itself; the blended logits are the weighted average, and the sigmoid is applied once at the end.
Mirroring test-time augmentation averages the logits of all 8 flip combinations of the three spatial
axes (identity included) before weighting. Where a single window covers the whole volume, the result
is exactly the sigmoid of that window's logits, i.e. the direct forward pass.

Memory is bounded: only ``batch_size`` windows exist at a time; the accumulators are one float32 array
of logits ``[3, Z, Y, X]`` and one of weights ``[Z, Y, X]`` on the chosen device.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from fedseg.errors import ImageError

if TYPE_CHECKING:
    import torch

__all__ = ["gaussian_importance_map", "sliding_window_predict", "window_starts"]

log = logging.getLogger(__name__)

#: Smallest weight in the importance map, so window corners still count where nothing else covers them.
MIN_WEIGHT = 1e-3


def gaussian_importance_map(patch_size: tuple[int, int, int], sigma_scale: float = 0.125) -> np.ndarray:
    """Return a separable Gaussian of ``patch_size`` centred on the window, max 1, floored at 1e-3.

    sigma = ``sigma_scale`` * size per axis; the centre is ``(size - 1) / 2`` so the map is symmetric
    under flips (mirroring stays consistent).
    """
    if any(int(p) < 1 for p in patch_size) or sigma_scale <= 0:
        raise ValueError(f"patch_size must be positive and sigma_scale > 0, got {patch_size}, {sigma_scale}")
    out = np.ones((1, 1, 1), dtype=np.float64)
    for axis, size in enumerate(patch_size):
        x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
        g = np.exp(-(x**2) / (2.0 * (sigma_scale * size) ** 2))
        shape = [1, 1, 1]
        shape[axis] = size
        out = out * g.reshape(shape)
    out /= out.max()
    return np.maximum(out, MIN_WEIGHT).astype(np.float32)


def window_starts(image_size: tuple[int, ...], patch_size: tuple[int, ...], overlap: float) -> list[list[int]]:
    """Return, per axis, the start offsets of the windows (nnU-Net's step rule).

    ``image_size`` must be at least ``patch_size`` in every axis (pad first). The number of windows per
    axis is the fewest whose step does not exceed ``(1 - overlap) * patch``; the steps are then spread
    evenly so the last window ends exactly at the edge.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    starts = []
    for size, patch in zip(image_size, patch_size):
        if size < patch:
            raise ValueError(f"image size {tuple(image_size)} is smaller than the window {tuple(patch_size)}")
        target_step = patch * (1.0 - overlap)
        span = size - patch
        # More windows than positions would repeat a start (high overlap on a tiny margin): cap at span + 1.
        n = min(int(math.ceil(span / target_step)) + 1, span + 1)
        starts.append([int(round(span * i / (n - 1))) if n > 1 else 0 for i in range(n)])
    return starts


def _pad_amounts(shape: tuple[int, int, int], patch: tuple[int, int, int]) -> list[tuple[int, int]]:
    """Return (before, after) zero padding per axis that brings ``shape`` up to ``patch`` (centred)."""
    pads = []
    for s, p in zip(shape, patch):
        extra = max(p - s, 0)
        pads.append((extra // 2, extra - extra // 2))
    return pads


def _batches(items: list[tuple[int, int, int]], size: int) -> Iterator[list[tuple[int, int, int]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _mirrored_logits(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Average the logits of the 8 flip combinations of the spatial axes (identity included)."""
    total = forward(x)
    count = 1
    for r in (1, 2, 3):
        for axes in itertools.combinations((2, 3, 4), r):
            total = total + forward(x.flip(axes)).flip(axes)
            count += 1
    return total / count


def sliding_window_predict(
    model: torch.nn.Module,
    image: np.ndarray | torch.Tensor,
    *,
    patch_size: tuple[int, int, int],
    overlap: float = 0.5,
    batch_size: int = 1,
    mirror: bool = False,
    device: str | torch.device = "cpu",
    amp: bool = False,
    sigma_scale: float = 0.125,
) -> np.ndarray:
    """Predict region probabilities for a whole volume ``image`` [C, Z, Y, X]; return float32 [K, Z, Y, X].

    ``K`` is the model's number of output channels (3: WT, TC, ET) and the values are sigmoid
    probabilities of the Gaussian-blended logits. The model is put in eval mode and run under
    ``torch.inference_mode``; ``amp`` enables float16 autocast on CUDA only (ignored on CPU).
    """
    import torch

    if isinstance(image, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    else:
        tensor = image.detach().to("cpu", torch.float32)
    if tensor.ndim != 4:
        raise ImageError(f"sliding-window prediction expects an image [C, Z, Y, X], got shape {tuple(tensor.shape)}")
    # A NaN or infinity anywhere makes the sum non-finite: one cheap reduction instead of a full mask;
    # the exact (slower) check only runs to confirm when the sum is not finite (e.g. it overflowed).
    if not torch.isfinite(tensor.sum()) and not torch.isfinite(tensor).all():
        raise ImageError("sliding-window prediction got an image with NaN or infinite values")
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or min(patch) < 1:
        raise ValueError(f"patch_size must be three positive sizes (z, y, x), got {patch_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device)
    use_amp = bool(amp) and dev.type == "cuda"

    shape = tuple(int(s) for s in tensor.shape[1:])
    pads = _pad_amounts(shape, patch)  # type: ignore[arg-type]
    if any(b or a for b, a in pads):
        # F.pad takes the last axis first.
        flat = [v for b, a in reversed(pads) for v in (b, a)]
        tensor = torch.nn.functional.pad(tensor, flat, mode="constant", value=0.0)
    padded = tuple(int(s) for s in tensor.shape[1:])

    starts = window_starts(padded, patch, overlap)
    windows = list(itertools.product(*starts))
    weight = torch.from_numpy(gaussian_importance_map(patch, sigma_scale)).to(dev)

    model.eval()
    logits_acc: torch.Tensor | None = None
    weight_acc = torch.zeros(padded, dtype=torch.float32, device=dev)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            return model(x).float()

    log.debug("sliding window: %s -> %d windows of %s", shape, len(windows), patch)
    with torch.inference_mode():
        for batch in _batches(windows, batch_size):
            x = torch.stack(
                [tensor[:, z : z + patch[0], y : y + patch[1], w : w + patch[2]] for z, y, w in batch]
            ).to(dev, non_blocking=True)
            out = _mirrored_logits(forward, x) if mirror else forward(x)
            if out.shape[2:] != x.shape[2:]:
                raise ImageError(
                    f"the model returned windows of shape {tuple(out.shape[2:])} for input windows {patch}; "
                    "the patch size must be divisible by the model's total stride"
                )
            if logits_acc is None:
                logits_acc = torch.zeros((out.shape[1], *padded), dtype=torch.float32, device=dev)
            for i, (z, y, w) in enumerate(batch):
                logits_acc[:, z : z + patch[0], y : y + patch[1], w : w + patch[2]].addcmul_(out[i], weight)
                weight_acc[z : z + patch[0], y : y + patch[1], w : w + patch[2]] += weight
        assert logits_acc is not None  # at least one window always exists
        crop = tuple(slice(b, b + s) for (b, _), s in zip(pads, shape))
        logits_acc = logits_acc[(slice(None), *crop)]
        logits_acc /= weight_acc[crop]
        probs = torch.sigmoid_(logits_acc)
    return np.ascontiguousarray(probs.to("cpu").numpy(), dtype=np.float32)
