"""Federated validation: each global's pooled validation Dice from the sites' signed, site-level scores.

Every site scores the global it *received* on its validation split before it trains
(``metrics.val_dice_before`` and ``metrics.val_cases`` of its signed update; present only when the site has
at least ``training.metrics_min_cases`` validation cases, so no patient's number leaves a site). When the
coordinator aggregates round ``r`` it pools the accepted updates' scores, which all answer the global of
round ``r - 1`` (screening checked their parent):

    pooled Dice per region = sum(w_i * dice_i) / sum(w_i),   w_i = min(cases_i, enrolled_i)

with the per-site values and counts. A site's count is its own claim, so its weight is capped by the
training cases it enrolled with (the plan's ``cases`` of that site, in the version in force); when the plan
does not record that for every reporting site, the sites weigh equally (w_i = 1). Under the robust
strategies (``median``, ``trimmed-mean``) the pooled Dice per region is the median of the sites' values,
so no one site decides the curve, the early stop and the best global. Rejected updates do not count (their signer or history is in doubt);
a round where no accepted update carries a score has no point on the curve. The record (a *point*: round,
global digest, ``dice`` {WT, TC, ET}, their ``mean``, ``cases``, ``sites``) goes into the ledger's
``global-written`` entry of round ``r`` and into the signed manifest of global ``r``
(``metrics.federated_validation``), so the curve survives restarts and every reader can verify it. The last
global of a run is scored after the end by the sites' signed final scores
(:mod:`fedseg.workflow.store.final`); its point is the ledger event ``global-validated``.

The curve is the points in round order; the best point and the plateau follow :mod:`fedseg.workflow.selection`
with the plan's ``aggregation.early_stop_min_delta``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedseg.configs.aggregation import Strategy
from fedseg.federation.plan import Plan
from fedseg.labels import REGIONS
from fedseg.workflow.selection import best_round, plateaued, score

__all__ = ["GLOBAL_VALIDATED", "MANIFEST_KEY", "SiteScore", "best_point", "curve", "early_stop", "from_metrics",
           "pooled", "pooling", "site_score"]

MANIFEST_KEY = "federated_validation"  # in a global's signed metrics: the validation of its parent
GLOBAL_VALIDATED = "global-validated"  # ledger event: the point of a global no later round scored


@dataclass(frozen=True)
class SiteScore:
    """One site's signed, site-level Dice per region of a global over ``cases`` cases."""

    site: str
    cases: int
    dice: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "cases": self.cases, "dice": dict(self.dice)}


def site_score(site: str, dice: Any, cases: Any) -> SiteScore | None:
    """Return the score when ``dice`` holds a finite value in [0, 1] per region and ``cases`` >= 1; else None."""
    if not isinstance(dice, Mapping) or not isinstance(cases, int) or isinstance(cases, bool) or cases < 1:
        return None
    values: dict[str, float] = {}
    for region in REGIONS:
        v = dice.get(region)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
            return None
        values[region] = float(v)
    return SiteScore(site, cases, values)


def from_metrics(site: str, metrics: Any) -> SiteScore | None:
    """Return the score of the received global that an update's signed ``metrics`` carry, or None."""
    if not isinstance(metrics, Mapping):
        return None
    return site_score(site, metrics.get("val_dice_before"), metrics.get("val_cases"))


def pooling(plan: Plan, round_: int) -> dict[str, Any]:
    """Return :func:`pooled`'s settings under the version of ``plan`` in force for ``round_``."""
    governing = plan.in_force(round_)
    return {"enrolled": {s.id: s.cases for s in governing.sites},
            "robust": governing.aggregation.strategy in (Strategy.MEDIAN, Strategy.TRIMMED_MEAN)}


def pooled(round_: int, sha256: str, scores: Iterable[SiteScore], *, enrolled: Mapping[str, int | None],
           robust: bool) -> dict[str, Any] | None:
    """Return the curve point of the global of ``round_`` (digest ``sha256``), or None without scores.

    ``enrolled`` caps each site's case count (see the module docstring; :func:`pooling` gives both settings).
    """
    sites = sorted(scores, key=lambda s: s.site)
    if not sites:
        return None
    caps = [enrolled.get(s.site) for s in sites]
    counted = [s.cases if cap is None else min(s.cases, cap) for s, cap in zip(sites, caps, strict=True)]
    weights = [1] * len(sites) if None in caps else counted
    if robust:
        dice = {r: statistics.median(s.dice[r] for s in sites) for r in REGIONS}
    else:
        dice = {r: sum(w * s.dice[r] for w, s in zip(weights, sites, strict=True)) / sum(weights) for r in REGIONS}
    return {"round": round_, "sha256": sha256, "dice": dice, "mean": score({"dice": dice}), "cases": sum(counted),
            "sites": [s.to_dict() for s in sites]}


def curve(entries: Iterable[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Return the points recorded in ledger ``entries`` (plus ``extra``, a point not written yet), by round."""
    points: dict[int, dict[str, Any]] = {}
    for e in entries:
        point = e.get("validation") if e.get("event") in ("global-written", GLOBAL_VALIDATED) else None
        if isinstance(point, Mapping) and isinstance(point.get("round"), int):
            points.setdefault(int(point["round"]), dict(point))
    if extra is not None:
        points.setdefault(int(extra["round"]), dict(extra))
    return [points[r] for r in sorted(points)]


def best_point(points: Sequence[Mapping[str, Any]], min_delta: float) -> dict[str, Any] | None:
    """Return the best point of the curve (None for an empty curve)."""
    return dict(points[best_round(points, min_delta)]) if points else None


def early_stop(points: Sequence[Mapping[str, Any]], patience: int, min_delta: float) -> bool:
    """Return True when early stop is on (``patience`` > 0) and the curve has plateaued."""
    return patience > 0 and plateaued(points, patience, min_delta)
