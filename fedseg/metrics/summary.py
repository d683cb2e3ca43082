"""Summary statistics of per-case metrics: mean, median, std, quartiles, count.

NaN-aware: NaN values (undefined metrics under ``--empty nan``) are left out, and ``n`` counts the
values that remain. ``std`` is the sample standard deviation (``ddof=1``), NaN when fewer than two
values remain; quartiles use NumPy's default linear interpolation. A metric with no values at all
has every statistic NaN and ``n = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from fedseg.labels import REGIONS
from fedseg.metrics.case import METRICS

__all__ = ["STATISTICS", "summarize"]

STATISTICS: tuple[str, ...] = ("mean", "median", "std", "q25", "q75", "n")


def summarize(rows: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Return ``{region: {metric: {"mean", "median", "std", "q25", "q75", "n"}}}`` over per-case rows.

    Each row is what :func:`~fedseg.metrics.case.case_metrics` returns. Regions are WT, TC, ET and the
    metrics those of ``case_metrics``; a metric missing from a row counts as NaN.
    """
    rows = list(rows)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for region in REGIONS:
        out[region] = {}
        for metric in METRICS:
            values = np.array([float(row.get(region, {}).get(metric, math.nan)) for row in rows], dtype=np.float64)
            out[region][metric] = describe(values)
    return out


def describe(values: np.ndarray) -> dict[str, float]:
    """Return mean, median, std (ddof=1), q25, q75 and n of the non-NaN entries of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": math.nan, "median": math.nan, "std": math.nan, "q25": math.nan, "q75": math.nan, "n": 0}
    q25, median, q75 = (float(x) for x in np.percentile(v, [25, 50, 75]))
    return {
        "mean": float(v.mean()),
        "median": median,
        "std": float(v.std(ddof=1)) if n > 1 else math.nan,
        "q25": q25,
        "q75": q75,
        "n": n,
    }
