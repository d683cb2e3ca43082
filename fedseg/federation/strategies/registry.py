"""The strategy registry: each :class:`~fedseg.configs.aggregation.Strategy` mapped to how it combines and steps.

Every strategy is expressed on client *deltas* (client model - current global): a combine rule (the
example-weighted mean, or the coordinate-wise median / trimmed mean) turns the round's deltas into one
delta per tensor, then a server step turns (global tensor, combined delta, optimizer state) into the next
global tensor. FedAvg, median and trimmed mean step with ``x + delta``, which equals averaging (or taking
the median of) the client models themselves; FedAvgM and the adaptive optimizers keep state.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedseg.configs.aggregation import AggregationConfig, Strategy
from fedseg.errors import AggregationError
from fedseg.federation.strategies.fedavgm import fedavgm_step
from fedseg.federation.strategies.fedopt import SecondMoment, fedopt_step

__all__ = ["REGISTRY", "Combine", "StrategySpec", "get_strategy", "plain_step", "strategy_params"]

StepResult = tuple[np.ndarray, dict[str, np.ndarray]]
ServerStep = Callable[[np.ndarray, np.ndarray, "Mapping[str, np.ndarray] | None", AggregationConfig], StepResult]


class Combine(str, enum.Enum):
    """How a round's deltas become one delta."""

    MEAN = "mean"  # example-weighted, streamed (O(model) memory)
    MEDIAN = "median"  # coordinate-wise, unweighted, tensor by tensor
    TRIMMED_MEAN = "trimmed-mean"  # coordinate-wise, unweighted, tensor by tensor


def plain_step(x: np.ndarray, delta: np.ndarray, state: Mapping[str, np.ndarray] | None,
               config: AggregationConfig) -> StepResult:
    """Return ``x + delta`` (float64 arithmetic, float32 result) and no state."""
    return (np.asarray(x, dtype=np.float64) + np.asarray(delta, dtype=np.float64)).astype(np.float32), {}


def _fedavgm(x: np.ndarray, delta: np.ndarray, state: Mapping[str, np.ndarray] | None,
             config: AggregationConfig) -> StepResult:
    return fedavgm_step(x, delta, state, learning_rate=config.server_learning_rate, momentum=config.server_momentum)


def _adaptive(rule: SecondMoment) -> ServerStep:
    def step(x: np.ndarray, delta: np.ndarray, state: Mapping[str, np.ndarray] | None,
             config: AggregationConfig) -> StepResult:
        return fedopt_step(x, delta, state, rule=rule, learning_rate=config.server_learning_rate,
                           beta1=config.beta1, beta2=config.beta2, tau=config.tau)

    return step


@dataclass(frozen=True)
class StrategySpec:
    """One strategy: its combine rule, its server step, the config fields it reads and its state slots."""

    strategy: Strategy
    combine: Combine
    step: ServerStep
    params: tuple[str, ...]
    state_slots: tuple[str, ...]
    paper: str


_OPT_PARAMS = ("server_learning_rate", "beta1", "beta2", "tau")

REGISTRY: dict[Strategy, StrategySpec] = {
    Strategy.FEDAVG: StrategySpec(Strategy.FEDAVG, Combine.MEAN, plain_step, (), (), "McMahan et al. 2017"),
    Strategy.FEDAVGM: StrategySpec(Strategy.FEDAVGM, Combine.MEAN, _fedavgm,
                                   ("server_learning_rate", "server_momentum"), ("m",), "Hsu et al. 2019"),
    Strategy.FEDADAM: StrategySpec(Strategy.FEDADAM, Combine.MEAN, _adaptive(SecondMoment.ADAM), _OPT_PARAMS,
                                   ("m", "v"), "Reddi et al. 2021"),
    Strategy.FEDYOGI: StrategySpec(Strategy.FEDYOGI, Combine.MEAN, _adaptive(SecondMoment.YOGI), _OPT_PARAMS,
                                   ("m", "v"), "Reddi et al. 2021"),
    Strategy.FEDADAGRAD: StrategySpec(Strategy.FEDADAGRAD, Combine.MEAN, _adaptive(SecondMoment.ADAGRAD),
                                      ("server_learning_rate", "beta1", "tau"), ("m", "v"), "Reddi et al. 2021"),
    Strategy.MEDIAN: StrategySpec(Strategy.MEDIAN, Combine.MEDIAN, plain_step, (), (), "Yin et al. 2018"),
    Strategy.TRIMMED_MEAN: StrategySpec(Strategy.TRIMMED_MEAN, Combine.TRIMMED_MEAN, plain_step,
                                        ("trim_fraction",), (), "Yin et al. 2018"),
}


def get_strategy(strategy: Strategy | str) -> StrategySpec:
    """Return the registered spec of ``strategy`` (an enum member or its value)."""
    try:
        key = Strategy(strategy)
    except ValueError:
        names = ", ".join(s.value for s in Strategy)
        raise AggregationError(f"unknown strategy {strategy!r}; expected one of {names}") from None
    return REGISTRY[key]


def strategy_params(strategy: Strategy | str, config: AggregationConfig) -> dict[str, Any]:
    """Return the parameters recorded in a global's manifest: the strategy's own plus ``clip_norm``."""
    spec = get_strategy(strategy)
    params: dict[str, Any] = {name: getattr(config, name) for name in spec.params}
    params["clip_norm"] = config.clip_norm
    return params
