"""Each accepted update's weight in a mean: example counts, uniform, or example counts with a cap per site.

Example counts are claims; screening bounds each by the site's enrolled case count in the plan
(:func:`fedseg.federation.screening.check_examples`), so a site cannot buy influence by inflating them.
``capped`` goes further and limits any site's share of the total weight to ``max_share``, the
"water-filling" rule: sites above the cap are set to exactly the cap and the remaining weight is shared by
the others in proportion to their counts, repeated until no share exceeds the cap. When the cap is
infeasible (``max_share * n < 1``: n sites cannot each stay below it) the weights are uniform, the closest
feasible answer. The result is normalized to sum to 1.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedseg.configs.aggregation import Weighting
from fedseg.errors import AggregationError

__all__ = ["capped_shares", "update_weights"]


def capped_shares(counts: Mapping[str, float], max_share: float) -> dict[str, float]:
    """Return shares proportional to ``counts`` with none above ``max_share`` (see the module docstring)."""
    if not counts:
        return {}
    if any(not c > 0 for c in counts.values()):
        raise AggregationError(f"example counts must be positive, got {dict(counts)}")
    n = len(counts)
    if max_share * n < 1.0:
        return {k: 1.0 / n for k in counts}
    capped: set[str] = set()
    while True:
        free = {k: float(v) for k, v in counts.items() if k not in capped}
        left = 1.0 - max_share * len(capped)
        total = sum(free.values())
        shares = {k: left * v / total for k, v in free.items()}
        over = {k for k, s in shares.items() if s > max_share * (1 + 1e-12)}
        if not over:
            shares.update({k: max_share for k in capped})
            return {k: shares[k] for k in counts}
        capped |= over


def update_weights(counts: Mapping[str, int], weighting: Weighting | str, max_share: float = 1.0) -> dict[str, float]:
    """Return each update's weight (summing to 1) under ``weighting``; ``counts`` are the bounded example counts."""
    weighting = Weighting(weighting)
    if not counts:
        return {}
    if any(not c > 0 for c in counts.values()):
        raise AggregationError(f"example counts must be positive, got {dict(counts)}")
    if weighting is Weighting.UNIFORM:
        return {k: 1.0 / len(counts) for k in counts}
    if weighting is Weighting.CAPPED:
        return capped_shares(counts, max_share)
    total = float(sum(counts.values()))
    return {k: v / total for k, v in counts.items()}
