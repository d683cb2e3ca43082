"""Aggregation strategies: pure functions over NumPy arrays and the registry keyed by Strategy.

FedAvg (McMahan et al. 2017), FedAvgM (Hsu et al. 2019), FedAdam/FedYogi/FedAdagrad (Reddi et al. 2021),
coordinate-wise median and trimmed mean (Yin et al. 2018), and norm clipping of each update's delta.
"""

from __future__ import annotations

from fedseg.federation.strategies.clipping import clip_delta, clip_scale, global_norm, squared_norm
from fedseg.federation.strategies.fedavg import WeightedMean, fedavg, weighted_mean
from fedseg.federation.strategies.fedavgm import fedavgm_step
from fedseg.federation.strategies.fedopt import (
    SecondMoment,
    fedadagrad_step,
    fedadam_step,
    fedopt_step,
    fedyogi_step,
)
from fedseg.federation.strategies.median import coordinate_median, median
from fedseg.federation.strategies.registry import (
    REGISTRY,
    Combine,
    StrategySpec,
    get_strategy,
    plain_step,
    strategy_params,
)
from fedseg.federation.strategies.trimmed_mean import coordinate_trimmed_mean, trim_count, trimmed_mean
from fedseg.federation.strategies.weighting import capped_shares, update_weights

__all__ = [
    "REGISTRY",
    "Combine",
    "SecondMoment",
    "StrategySpec",
    "WeightedMean",
    "capped_shares",
    "clip_delta",
    "clip_scale",
    "coordinate_median",
    "coordinate_trimmed_mean",
    "fedadagrad_step",
    "fedadam_step",
    "fedavg",
    "fedavgm_step",
    "fedopt_step",
    "fedyogi_step",
    "get_strategy",
    "global_norm",
    "median",
    "plain_step",
    "squared_norm",
    "strategy_params",
    "trim_count",
    "trimmed_mean",
    "update_weights",
    "weighted_mean",
]
