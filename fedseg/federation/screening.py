"""Update screening rules: each a small function that returns a :class:`Reason` to reject, or None.

The coordinator runs them on every update before any is used (DESIGN.md §4.5, §5). Signature, signer,
federation/plan binding, kind, tensor names/shapes/dtypes and finiteness are checked by
:func:`fedseg.federation.artifact.read_artifact`; its error becomes the reason (:func:`reason_from_error`).
The rules here cover the round bookkeeping (round, parent, one update per site), the claimed example
count, the model configuration and the update-norm outlier test.

Norm outliers use the robust z-score of Iglewicz & Hoaglin (1993): ``z = (x - median) / (1.4826 * MAD)``,
where 1.4826 makes the median absolute deviation (MAD) a consistent estimate of the standard deviation
under normality. When the MAD is 0 (more than half the norms equal) the mean absolute deviation scaled by
1.2533 (sqrt(pi/2)) stands in; when that is 0 too, all norms are equal and none is an outlier. Only the
high side is tested: a large delta can dominate a mean, a small one cannot. The test is skipped with fewer
than 3 updates (a median of two says nothing) and when the threshold ``plan.aggregation.outlier_z`` is 0.

With few sites the MAD of honest updates can be tiny (three non-IID sites whose norms differ by 30% give a
MAD of a few percent), which would flag ordinary heterogeneity. The scale is therefore never below
``RELATIVE_SCALE_FLOOR`` (0.5) times the median norm: with the default limit of 3.5 an update is an outlier
only when its delta norm exceeds the median by more than 1.75 times the median (2.75x the median), which a
scaled or boosted update (model replacement, x10 and beyond) still crosses by far.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation.manifest import WeightsKind, parse_timestamp

__all__ = [
    "MAD_SCALE",
    "MIN_UPDATES_FOR_OUTLIERS",
    "Reason",
    "check_created_at",
    "check_examples",
    "check_model",
    "check_parent",
    "check_round",
    "check_weights",
    "norm_outliers",
    "parse_timestamp",
    "reason_from_error",
    "robust_z_scores",
]

MAD_SCALE = 1.4826
MEAN_AD_SCALE = 1.2533
MIN_UPDATES_FOR_OUTLIERS = 3
RELATIVE_SCALE_FLOOR = 0.5


@dataclass(frozen=True)
class Reason:
    """Why an update was rejected: a short rule name and a sentence saying what was expected and found."""

    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}"


def reason_from_error(exc: ArtifactError) -> Reason:
    """Turn a verification error from ``read_artifact`` into a rejection reason."""
    rule = "signature" if isinstance(exc, SignatureError) else "binding" if isinstance(exc, BindingError) else "payload"
    return Reason(rule, str(exc))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_round(manifest: Mapping[str, Any], expected: int) -> Reason | None:
    """Reject an update made for another round than ``expected`` (= current global round + 1)."""
    found = manifest.get("round")
    if not _is_int(found) or found != expected:
        return Reason("round", f"expected round {expected}, the update is for round {found!r}")
    return None


def check_parent(manifest: Mapping[str, Any], parent_sha256: str) -> Reason | None:
    """Reject an update not trained from the current global (its ``parent_sha256`` differs)."""
    found = manifest.get("parent_sha256")
    if found != parent_sha256:
        shown = found[:12] if isinstance(found, str) else repr(found)
        return Reason("parent", f"expected parent {parent_sha256[:12]} (the current global), found {shown}")
    return None


def check_examples(manifest: Mapping[str, Any], max_examples: int) -> Reason | None:
    """Reject an example count that is not an integer in ``1..max_examples`` (plan.training.max_examples)."""
    found = manifest.get("num_examples")
    if not _is_int(found) or not 1 <= found <= max_examples:
        return Reason("examples", f"expected num_examples in 1..{max_examples}, found {found!r}")
    return None


def check_weights(manifest: Mapping[str, Any]) -> Reason | None:
    """Reject an update whose ``weights`` field is not a :class:`WeightsKind` (full or delta)."""
    found = manifest.get("weights")
    if found not in {w.value for w in WeightsKind}:
        return Reason("weights", f"expected weights 'full' or 'delta', found {found!r}")
    return None


def check_model(manifest: Mapping[str, Any], model: Mapping[str, Any]) -> Reason | None:
    """Reject an update whose model configuration differs from the plan's."""
    found = manifest.get("model")
    if found != dict(model):
        if isinstance(found, Mapping):
            keys = sorted(k for k in set(found) | set(model) if found.get(k) != model.get(k))
            return Reason("model", f"the update's model config differs from the plan's in {', '.join(keys)}")
        return Reason("model", f"expected the plan's model config, found {type(found).__name__}")
    return None


def check_created_at(manifest: Mapping[str, Any]) -> Reason | None:
    """Reject an update whose ``created_at`` is not an ISO 8601 time with a timezone (it dates the global)."""
    if parse_timestamp(manifest.get("created_at")) is None:
        return Reason("created-at", f"expected an ISO 8601 UTC time, found {manifest.get('created_at')!r}")
    return None


def robust_z_scores(values: Mapping[str, float]) -> dict[str, float]:
    """Return ``(x - median) / scale`` per key (see the module docstring for the scale; 0 when all equal)."""
    if not values:
        return {}
    arr = np.array([float(v) for v in values.values()], dtype=np.float64)
    centre = float(np.median(arr))
    deviation = np.abs(arr - centre)
    scale = MAD_SCALE * float(np.median(deviation))
    if scale == 0.0:
        scale = MEAN_AD_SCALE * float(np.mean(deviation))
    scale = max(scale, RELATIVE_SCALE_FLOOR * abs(centre))
    if scale == 0.0:
        return {k: 0.0 for k in values}
    return {k: (float(v) - centre) / scale for k, v in values.items()}


def norm_outliers(norms: Mapping[str, float], threshold: float) -> dict[str, Reason]:
    """Return a reason for every key whose delta norm has a robust z-score above ``threshold``.

    Nothing is flagged when ``threshold`` is 0 or fewer than :data:`MIN_UPDATES_FOR_OUTLIERS` norms are
    given.
    """
    if threshold <= 0 or len(norms) < MIN_UPDATES_FOR_OUTLIERS:
        return {}
    centre = float(np.median([float(v) for v in norms.values()]))
    out: dict[str, Reason] = {}
    for key, z in robust_z_scores(norms).items():
        if z > threshold or math.isinf(z):
            out[key] = Reason("norm-outlier", f"delta norm {norms[key]:.4g} has robust z-score {z:.1f} "
                                              f"(median {centre:.4g}); the limit is {threshold:g}")
    return out
