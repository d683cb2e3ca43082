"""Aggregation settings (the plan's ``[aggregation]`` table) and the strategy names."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from fedseg.configs.training import DriftCorrection
from fedseg.configtools import require
from fedseg.errors import PlanError
from fedseg.privacy.config import PrivacyConfig, PrivacyMode

__all__ = ["AggregationConfig", "Strategy", "Weighting", "aggregation_for_privacy", "check_drift_aggregation",
           "check_privacy_aggregation"]


class Strategy(str, enum.Enum):
    """The aggregation strategies; ``fedseg.federation.strategies`` maps each to its function."""

    FEDAVG = "fedavg"
    FEDAVGM = "fedavgm"
    FEDADAM = "fedadam"
    FEDYOGI = "fedyogi"
    FEDADAGRAD = "fedadagrad"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed-mean"


class Weighting(str, enum.Enum):
    """How much each accepted update counts in a mean: by its (bounded) example count, equally, or capped."""

    EXAMPLES = "examples"
    UNIFORM = "uniform"
    CAPPED = "capped"


@dataclass(frozen=True)
class AggregationConfig:
    """How the coordinator turns a round's updates into the next global model.

    ``server_learning_rate``, ``server_momentum``, ``beta1``, ``beta2`` and ``tau`` parameterize the server
    optimizers (FedAvgM, FedAdam, FedYogi, FedAdagrad; Reddi et al. 2021). ``trim_fraction`` is cut from
    each end per coordinate by the trimmed mean. ``clip_norm`` > 0 clips each update's delta to that L2
    norm (0 = off). ``outlier_z`` > 0 rejects updates whose delta norm has a robust z-score above it
    (0 = off). Globals expire ``global_expiry_days`` after they are written.

    ``weighting`` decides each update's weight in the mean strategies: ``examples`` (its example count,
    which screening bounds by the site's enrolled case count in the plan times ``1 + examples_tolerance``),
    ``uniform`` (1 each), or ``capped`` (example counts, but no site above ``max_share`` of the total).
    ``direction_z`` > 0 rejects updates whose cosine to the coordinate-wise median delta of the round lies
    more than that many robust standard deviations below the median cosine (never less than
    ``direction_floor``); 0 = off.

    ``round_deadline`` (seconds) is how long ``fedseg coordinator run`` waits for every site after it
    publishes a global; once it has passed, the round closes as soon as ``min_sites`` sites answered.
    0 = wait for every site.

    ``early_stop_patience`` > 0 ends a federation run by ``fedseg coordinator run`` early once the pooled
    federated validation (the mean over WT/TC/ET of the sites' case-weighted Dice of each global) has not
    improved by more than ``early_stop_min_delta`` for that many evaluations (0 = run every planned round).
    ``early_stop_min_delta`` is also the margin by which a global must beat the best so far to be named the
    federation's result (:mod:`fedseg.workflow.selection`).
    """

    strategy: Strategy = Strategy.FEDAVG
    min_sites: int = 1
    server_learning_rate: float = 1.0
    server_momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    trim_fraction: float = 0.2
    clip_norm: float = 0.0
    outlier_z: float = 3.5
    global_expiry_days: int = 30
    weighting: Weighting = Weighting.EXAMPLES
    examples_tolerance: float = 0.1
    max_share: float = 0.5
    direction_z: float = 3.5
    direction_floor: float = 0.25
    round_deadline: float = 0.0
    early_stop_patience: int = 0
    early_stop_min_delta: float = 1e-4

    def __post_init__(self) -> None:
        where = "aggregation"
        require(self.min_sites >= 1, where, f"min_sites must be >= 1, got {self.min_sites}")
        require(0.0 < self.server_learning_rate <= 100.0, where, "server_learning_rate must lie in (0, 100]")
        require(0.0 <= self.server_momentum < 1.0, where, "server_momentum must lie in [0, 1)")
        require(0.0 <= self.beta1 < 1.0, where, "beta1 must lie in [0, 1)")
        require(0.0 <= self.beta2 < 1.0, where, "beta2 must lie in [0, 1)")
        require(self.tau > 0.0, where, "tau must be > 0")
        require(0.0 <= self.trim_fraction < 0.5, where, "trim_fraction must lie in [0, 0.5)")
        require(self.clip_norm >= 0.0, where, "clip_norm must be >= 0 (0 = off)")
        require(self.outlier_z >= 0.0, where, "outlier_z must be >= 0 (0 = off)")
        require(1 <= self.global_expiry_days <= 3650, where, "global_expiry_days must lie in 1..3650")
        require(0.0 <= self.examples_tolerance <= 10.0, where, "examples_tolerance must lie in [0, 10]")
        require(0.0 < self.max_share <= 1.0, where, "max_share must lie in (0, 1]")
        require(self.direction_z >= 0.0, where, "direction_z must be >= 0 (0 = off)")
        require(0.0 < self.direction_floor <= 2.0, where, "direction_floor must lie in (0, 2]")
        require(self.round_deadline >= 0.0, where, "round_deadline must be >= 0 seconds (0 = wait for every site)")
        require(0 <= self.early_stop_patience <= 10_000, where, "early_stop_patience must lie in 0..10000 (0 = off)")
        require(0.0 <= self.early_stop_min_delta < 1.0, where, "early_stop_min_delta must lie in [0, 1)")


def check_privacy_aggregation(privacy: PrivacyConfig, aggregation: AggregationConfig,
                              strategy: Strategy | None = None) -> None:
    """Refuse aggregation settings that void central DP's sensitivity bound (PlanError naming the setting).

    Central DP-FedAvg calibrates its noise to a sum of deltas each clipped to ``central_clip_norm`` with
    equal weights: example-count weights would let one site count more than the clip, and a median or
    trimmed mean is not a clipped sum. ``strategy`` is a run's override of the plan's strategy.
    """
    if privacy.mode is not PrivacyMode.CENTRAL:
        return
    if aggregation.weighting is not Weighting.UNIFORM:
        raise PlanError(f"privacy.mode central needs aggregation.weighting = \"uniform\" (example counts would void "
                        f"the sensitivity bound), got {aggregation.weighting.value!r}")
    chosen = Strategy(strategy) if strategy is not None else aggregation.strategy
    if strategy is not None and chosen is not aggregation.strategy:
        raise PlanError(f"privacy.mode central: the plan's strategy {aggregation.strategy.value!r} cannot be "
                        f"overridden (got --strategy {chosen.value!r}); the privacy accounting assumes the plan's")
    if chosen in (Strategy.MEDIAN, Strategy.TRIMMED_MEAN):
        raise PlanError(f"privacy.mode central needs a mean strategy (its noise is calibrated to a clipped sum), "
                        f"got aggregation.strategy = {chosen.value!r}")


def check_drift_aggregation(drift: DriftCorrection, privacy: PrivacyConfig, aggregation: AggregationConfig,
                            strategy: Strategy | None = None) -> None:
    """Refuse aggregation settings under which SCAFFOLD's derived control variate goes wrong (PlanError).

    A site derives the federation's ``c`` from the global's last move (:mod:`fedseg.workflow.site.drift`);
    that equals the weighted mean of the sites' ``c_i`` only when the global moves by the plain mean of the
    updates. A server optimizer, a median or trimmed mean, clipped updates or central noise move it
    otherwise, and the offset they leave is never corrected: it adds up round after round.
    ``strategy`` is a run's override of the plan's strategy.
    """
    if drift is not DriftCorrection.SCAFFOLD:
        return
    chosen = Strategy(strategy) if strategy is not None else aggregation.strategy
    why = None
    if chosen is not Strategy.FEDAVG:
        why = f"aggregation.strategy = {chosen.value!r}" + (" (--strategy)" if strategy is not None else "")
    elif aggregation.clip_norm > 0:
        why = f"aggregation.clip_norm = {aggregation.clip_norm:g} (clipped updates)"
    elif privacy.mode is PrivacyMode.CENTRAL:
        why = 'privacy.mode = "central" (noise added to the global)'
    if why is not None:
        raise PlanError(f'training.drift_correction = "scaffold" derives the federation\'s control variate from '
                        f'the global\'s last move, which needs plain FedAvg; {why} would leave an offset that '
                        'grows round after round. Use strategy "fedavg" with clip_norm = 0 and no central '
                        'noise, or drift_correction = "none"')


def aggregation_for_privacy(privacy: PrivacyConfig, aggregation: AggregationConfig) -> AggregationConfig:
    """Return ``aggregation`` with what the privacy mode requires set (central DP: uniform weights), then checked.

    Commands that build a plan from options (``init``, ``simulate``, ``demo``) call this, so a user asking for
    central DP gets its required weighting instead of an error; settings it cannot fix (a median strategy)
    still raise :class:`PlanError` from :func:`check_privacy_aggregation`.
    """
    if privacy.mode is PrivacyMode.CENTRAL:
        aggregation = replace(aggregation, weighting=Weighting.UNIFORM)
    check_privacy_aggregation(privacy, aggregation)
    return aggregation
