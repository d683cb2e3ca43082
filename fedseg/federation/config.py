"""Aggregation settings (the plan's ``[aggregation]`` table) and the strategy names."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fedseg.configtools import require

__all__ = ["AggregationConfig", "Strategy"]


class Strategy(str, enum.Enum):
    """The aggregation strategies; ``fedseg.federation.strategies`` maps each to its function."""

    FEDAVG = "fedavg"
    FEDAVGM = "fedavgm"
    FEDADAM = "fedadam"
    FEDYOGI = "fedyogi"
    FEDADAGRAD = "fedadagrad"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed-mean"


@dataclass(frozen=True)
class AggregationConfig:
    """How the coordinator turns a round's updates into the next global model.

    ``server_learning_rate``, ``server_momentum``, ``beta1``, ``beta2`` and ``tau`` parameterize the server
    optimizers (FedAvgM, FedAdam, FedYogi, FedAdagrad; Reddi et al. 2021). ``trim_fraction`` is cut from
    each end per coordinate by the trimmed mean. ``clip_norm`` > 0 clips each update's delta to that L2
    norm (0 = off). ``outlier_z`` > 0 rejects updates whose delta norm has a robust z-score above it
    (0 = off). Globals expire ``global_expiry_days`` after they are written.
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
