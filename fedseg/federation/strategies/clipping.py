"""Norm clipping of an update's delta before it is combined.

Each client delta ``d`` is scaled by ``min(1, C / ||d||_2)`` where the norm is taken over all tensors of
the model together, bounding the influence of any one client (as in DP-FedAvg, McMahan, Ramage, Talwar,
Zhang, "Learning Differentially Private Recurrent Language Models", ICLR 2018; and the norm-bounding
defence of Sun et al., "Can You Really Backdoor Federated Learning?", 2019). ``C = 0`` turns clipping off.
A zero delta is left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from fedseg.errors import AggregationError

__all__ = ["clip_delta", "clip_scale", "global_norm", "squared_norm"]


def squared_norm(array: np.ndarray) -> float:
    """Return the float64 sum of squares of one array."""
    flat = np.asarray(array, dtype=np.float64).ravel()
    return float(np.einsum("i,i->", flat, flat))  # not np.dot: avoids BLAS thread start-up on small arrays


def global_norm(tensors: Iterable[np.ndarray] | Mapping[str, np.ndarray]) -> float:
    """Return the L2 norm over all tensors together (float64)."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return math.sqrt(sum(squared_norm(t) for t in values))


def clip_scale(norm: float, max_norm: float) -> float:
    """Return the factor ``min(1, max_norm / norm)`` (1 when clipping is off or the norm is 0)."""
    if max_norm < 0 or not math.isfinite(max_norm):
        raise AggregationError(f"clip_norm must be a finite number >= 0, got {max_norm}")
    if max_norm == 0 or norm <= max_norm:
        return 1.0
    return max_norm / norm


def clip_delta(delta: Mapping[str, np.ndarray], max_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """Return ``(clipped delta as float32, scale applied)``."""
    scale = clip_scale(global_norm(delta), max_norm)
    clipped = {k: (np.asarray(v, dtype=np.float64) * scale).astype(np.float32) for k, v in delta.items()}
    return clipped, scale
