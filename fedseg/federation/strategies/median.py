"""Coordinate-wise median of client models (Byzantine-robust aggregation).

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical
Rates", ICML 2018. Each coordinate of the result is the median of that coordinate over the clients; it is
unweighted (example counts are ignored, as in the paper), so one client cannot buy influence by claiming
many examples. With an even number of clients the median is the mean of the two middle values (NumPy's
convention). Computed in float64 and cast to float32; the function works on one tensor at a time so the
caller can stream a model tensor by tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from fedseg.errors import AggregationError

__all__ = ["coordinate_median", "median"]


def _stack(arrays: Sequence[np.ndarray], where: str) -> np.ndarray:
    if not arrays:
        raise AggregationError(f"{where}: no arrays to combine")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise AggregationError(f"{where}: arrays must share one shape, got {sorted(shapes)}")
    return np.stack([np.asarray(a, dtype=np.float64) for a in arrays])


def coordinate_median(arrays: Sequence[np.ndarray], *, dtype: type = np.float32) -> np.ndarray:
    """Return the per-coordinate median of equally shaped arrays, as ``dtype`` (float32 by default)."""
    return np.median(_stack(arrays, "median"), axis=0).astype(dtype)


def median(models: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the coordinate-wise median of whole models (all in memory; the workflow streams instead)."""
    models = list(models)
    if not models:
        raise AggregationError("median: no models to combine")
    return {name: coordinate_median([m[name] for m in models]) for name in models[0]}
