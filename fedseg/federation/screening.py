"""Update screening rules: each a small function that returns a :class:`Reason` to reject, or None.

The coordinator runs them on every update before any is used (DESIGN.md §4.5, §5). Signature, signer,
federation/plan binding, kind, tensor names/shapes/dtypes and finiteness are checked by
:func:`fedseg.federation.artifact.read_artifact`; its error becomes the reason (:func:`reason_from_error`).
The rules here cover the round bookkeeping (round, parent, one update per site), the claimed example
count (bounded by the site's enrolled case count), the model configuration, the privacy record a
DP-SGD update must carry, the update-norm outlier test and the update-direction outlier test.

Under ``[privacy] mode = "dp-sgd"`` the screens stay as they are, a decision (README, "Differential
privacy"): they only read DP outputs, so they cost no privacy; every honest site adds noise of the same
std per step (``noise_multiplier * max_grad_norm / batch_size``, since ``q * n = batch_size``), so honest
norms stay comparable and the relative norm screen keeps its meaning; the direction screen catches a
sign-flipped update only where an update's signal outweighs its noise (many steps, large clip), and
pure noise has no direction to flip. Under ``central`` the coordinator turns both outlier screens off:
clipping already bounds each site's influence, and rejecting a site because of the other sites' deltas
(their median) would publish a data-dependent choice outside the accounting.

Direction outliers compare each update's delta with the coordinate-wise median delta of the round (the
robust aggregate of Yin et al., "Byzantine-Robust Distributed Learning", ICML 2018), by cosine similarity
as FLTrust does with its root-dataset direction (Cao et al., "FLTrust", NDSS 2021); the cosines are then
screened with the same robust z-score (low side only, with a floor; :func:`direction_outliers`).

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
from fedseg.privacy.config import PrivacyConfig, PrivacyMode

__all__ = [
    "MAD_SCALE",
    "MIN_UPDATES_FOR_OUTLIERS",
    "Reason",
    "check_created_at",
    "check_examples",
    "check_model",
    "check_parent",
    "check_privacy",
    "check_round",
    "check_weights",
    "direction_outliers",
    "examples_bound",
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


def examples_bound(max_examples: int, enrolled: int | None, tolerance: float) -> int:
    """Return the largest example count a site may claim: its enrolled cases x (1 + tolerance), and max_examples."""
    if enrolled is None:
        return max_examples
    return min(max_examples, int(math.floor(enrolled * (1.0 + tolerance) + 1e-9)))


def check_examples(manifest: Mapping[str, Any], max_examples: int, *, enrolled: int | None = None,
                   tolerance: float = 0.0) -> Reason | None:
    """Reject an example count that is not an integer in ``1..bound``.

    ``bound`` is ``plan.training.max_examples`` and, when the plan records the site's enrolled case count,
    that count times ``1 + tolerance`` (``aggregation.examples_tolerance``): example counts are claims,
    and an unbounded claim would let one site take over an example-weighted mean.
    """
    found = manifest.get("num_examples")
    bound = examples_bound(max_examples, enrolled, tolerance)
    if not _is_int(found) or not 1 <= found <= bound:
        where = (f"the site's {enrolled} enrolled case(s) in the plan + {tolerance:g} tolerance"
                 if enrolled is not None else "plan training.max_examples")
        return Reason("examples", f"expected num_examples in 1..{bound} ({where}), found {found!r}")
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


def check_privacy(manifest: Mapping[str, Any], privacy: PrivacyConfig) -> Reason | None:
    """Under dp-sgd, reject an update whose signed privacy record is missing, off-plan or over the budget."""
    if privacy.mode is not PrivacyMode.DP_SGD:
        return None
    record = manifest.get("privacy")
    if not isinstance(record, Mapping) or record.get("mode") != PrivacyMode.DP_SGD.value:
        return Reason("privacy", "the plan requires DP-SGD; the update carries no dp-sgd privacy record")
    eps = record.get("epsilon")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps <= privacy.target_epsilon * (1 + 1e-9):
        return Reason("privacy", f"the update's ε {eps!r} is not within the plan's budget {privacy.target_epsilon:g}")
    if record.get("delta") != privacy.delta or record.get("clip") != privacy.max_grad_norm:
        return Reason("privacy", f"the update's δ {record.get('delta')!r} and clip {record.get('clip')!r} are not the "
                                 f"plan's ({privacy.delta:g}, {privacy.max_grad_norm:g})")
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


def direction_outliers(cosines: Mapping[str, float], threshold: float, floor: float) -> dict[str, Reason]:
    """Return a reason for every key whose cosine to the round's median delta is a low-side robust outlier.

    The score is ``(median(c) - c_k) / max(1.4826 * MAD(c), floor)``; an update is rejected when it exceeds
    ``threshold``. Only the low side is tested: pointing the wrong way (a sign-flipped or otherwise
    poisoned update) is the attack, agreeing more than others is not. The floor keeps the ordinary spread of
    honest non-IID sites (cosines of 0.3-0.9 to the median) from looking significant when the MAD of a few
    sites is tiny: with the default floor 0.25 and limit 3.5 a cosine must lie 0.875 below the median, which
    a sign flip (cosine near -c of the honest ones) crosses and heterogeneity does not. Nothing is judged
    with fewer than :data:`MIN_UPDATES_FOR_OUTLIERS` cosines or when ``threshold`` is 0.
    """
    if threshold <= 0 or len(cosines) < MIN_UPDATES_FOR_OUTLIERS:
        return {}
    arr = np.array([float(v) for v in cosines.values()], dtype=np.float64)
    centre = float(np.median(arr))
    scale = max(MAD_SCALE * float(np.median(np.abs(arr - centre))), floor)
    out: dict[str, Reason] = {}
    for key, c in cosines.items():
        z = (centre - float(c)) / scale
        if z > threshold or not math.isfinite(float(c)):
            out[key] = Reason("direction", f"cosine {float(c):.3f} to the round's median delta lies {z:.1f} robust "
                                           f"deviations below the median cosine {centre:.3f}; the limit is {threshold:g}")
    return out


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
