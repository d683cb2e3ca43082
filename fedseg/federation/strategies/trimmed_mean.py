"""Coordinate-wise trimmed mean of client models (Byzantine-robust aggregation).

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
Rates", ICML 2018. For each coordinate the values of the ``m`` clients are sorted, the ``k = floor(beta *
m)`` largest and ``k`` smallest are dropped, and the rest are averaged (unweighted, as in the paper). With
``beta`` in [0, 0.5) at least one value always remains; ``beta = 0`` is the plain mean and a ``k`` of 0
(too few clients for the fraction) trims nothing. Computed in float64, cast to float32, one tensor at a
time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fedseg.errors import AggregationError
from fedseg.federation.strategies.median import _stack

__all__ = ["coordinate_trimmed_mean", "trim_count", "trimmed_mean"]


def trim_count(num_clients: int, trim_fraction: float) -> int:
    """Return how many values are dropped from EACH end: ``floor(trim_fraction * num_clients)``."""
    if not 0.0 <= trim_fraction < 0.5:
        raise AggregationError(f"trimmed mean: trim_fraction must lie in [0, 0.5), got {trim_fraction}")
    # A tiny epsilon keeps 0.2 * 10 == 2 despite binary rounding of 0.2.
    return int(math.floor(trim_fraction * num_clients + 1e-9))


def coordinate_trimmed_mean(arrays: Sequence[np.ndarray], trim_fraction: float, *,
                            dtype: type = np.float32) -> np.ndarray:
    """Return the per-coordinate ``trim_fraction``-trimmed mean of equally shaped arrays, as ``dtype``."""
    stacked = _stack(arrays, "trimmed mean")
    k = trim_count(len(arrays), trim_fraction)
    if k:
        stacked.sort(axis=0)
        stacked = stacked[k : len(arrays) - k]
    return stacked.mean(axis=0).astype(dtype)


def trimmed_mean(models: Iterable[Mapping[str, np.ndarray]], trim_fraction: float) -> dict[str, np.ndarray]:
    """Return the coordinate-wise trimmed mean of whole models (all in memory)."""
    models = list(models)
    if not models:
        raise AggregationError("trimmed mean: no models to combine")
    return {name: coordinate_trimmed_mean([m[name] for m in models], trim_fraction) for name in models[0]}
