"""Choose the inference window: the whole (cropped) volume when it fits, else the largest window that does.

The U-Net is fully convolutional, so a window larger than the training patch gives a prediction of the same
model over more context at a fraction of the cost of many overlapping patches (32³ windows at 50% overlap
evaluate each voxel about 8 times). A window must be a multiple of the model's total stride in every axis;
the volume is zero-padded up to it (:func:`~fedseg.inference.sliding_window.sliding_window_predict`). Above
``max_voxels`` the axis furthest above the patch shrinks, one stride at a time, and the sliding window
covers the rest; never below the patch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_WINDOW_VOXELS", "inference_window", "total_stride"]

#: 128³: about 2 M voxels, a few hundred MB of activations per feature map of 32 channels.
MAX_WINDOW_VOXELS = 128**3


def total_stride(model: Any) -> tuple[int, int, int]:
    """Return the model's total stride per axis (``config.divisor``; (1, 1, 1) for a model without a config)."""
    config = getattr(model, "config", None)
    return tuple(config.divisor) if config is not None else (1, 1, 1)


def inference_window(shape: Sequence[int], patch: Sequence[int], stride: Sequence[int],
                     max_voxels: int = MAX_WINDOW_VOXELS) -> tuple[int, int, int]:
    """Return the window (z, y, x) covering ``shape``, a multiple of ``stride``, at least ``patch``, capped."""
    window = [max(int(p), math.ceil(int(s) / int(t)) * int(t)) for s, p, t in zip(shape, patch, stride)]
    while math.prod(window) > max_voxels:
        axis = max(range(3), key=lambda i: window[i] - int(patch[i]))
        if window[axis] <= int(patch[axis]):
            break
        window[axis] = max(int(patch[axis]), window[axis] - int(stride[axis]))
    return tuple(window)  # type: ignore[return-value]
