"""Model selection on a validation curve: a point's score, the best point, and when the curve has plateaued.

One rule for ``fedseg simulate --budget converged`` and for a real federation's early stop
(:mod:`fedseg.workflow.coordinator.fed_validation`). A point is a mapping with ``dice`` = {WT, TC, ET};
its score is the mean of the three. An evaluation *improves* when it beats the best so far by more than
``min_delta`` (ties and gains up to ``min_delta`` do not); the best point is the last one that improved,
so on ties the first maximum is kept. The curve has plateaued when ``patience`` evaluations followed the
best one without improving on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fedseg.labels import REGIONS

__all__ = ["MIN_DELTA", "best_round", "plateaued", "score"]

MIN_DELTA = 1e-4


def score(point: Mapping[str, Any]) -> float:
    """Return a curve point's validation score: its mean Dice over the regions."""
    return sum(float(point["dice"][r]) for r in REGIONS) / len(REGIONS)


def best_round(points: Sequence[Mapping[str, Any]], min_delta: float = MIN_DELTA) -> int:
    """Return the index of the best point (the last that beat the best before it by more than ``min_delta``)."""
    best = 0
    for i, p in enumerate(points):
        if score(p) > score(points[best]) + min_delta:
            best = i
    return best


def plateaued(points: Sequence[Mapping[str, Any]], patience: int, min_delta: float = MIN_DELTA) -> bool:
    """Return True when the last ``patience`` points did not improve on the best before them."""
    return bool(points) and len(points) - 1 - best_round(points, min_delta) >= patience
