"""FedAdam, FedYogi and FedAdagrad: adaptive server optimizers on the averaged client delta.

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated Optimization", ICLR
2021, Algorithm 2. With ``delta`` the example-weighted mean of (client model - global model), per
coordinate:

    m <- beta1 * m + (1 - beta1) * delta
    v <- v + delta^2                                           (FedAdagrad)
    v <- v - (1 - beta2) * delta^2 * sign(v - delta^2)         (FedYogi)
    v <- beta2 * v + (1 - beta2) * delta^2                     (FedAdam)
    x <- x + server_learning_rate * m / (sqrt(v) + tau)

As in the paper, ``m`` starts at 0 and ``v`` at ``tau^2`` (the algorithm asks for ``v_{-1} >= tau^2``) and
there is no bias correction. ``m`` and ``v`` are the coordinator's state between rounds. Arithmetic in
float64; model and state are returned as float32.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["SecondMoment", "fedadagrad_step", "fedadam_step", "fedopt_step", "fedyogi_step"]


class SecondMoment(str, enum.Enum):
    """How the second-moment estimate ``v`` is updated."""

    ADAGRAD = "adagrad"
    YOGI = "yogi"
    ADAM = "adam"


def fedopt_step(
    x: np.ndarray,
    delta: np.ndarray,
    state: Mapping[str, np.ndarray] | None,
    *,
    rule: SecondMoment,
    learning_rate: float,
    beta1: float,
    beta2: float,
    tau: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Apply one adaptive server step to one tensor; return ``(new x, {"m": m, "v": v})``."""
    d = np.asarray(delta, dtype=np.float64)
    if state is None:
        m_prev = np.zeros_like(d)
        v_prev = np.full_like(d, tau * tau)
    else:
        m_prev = np.asarray(state["m"], dtype=np.float64)
        v_prev = np.asarray(state["v"], dtype=np.float64)
    m = beta1 * m_prev + (1.0 - beta1) * d
    d2 = d * d
    if rule is SecondMoment.ADAGRAD:
        v = v_prev + d2
    elif rule is SecondMoment.YOGI:
        v = v_prev - (1.0 - beta2) * d2 * np.sign(v_prev - d2)
    else:
        v = beta2 * v_prev + (1.0 - beta2) * d2
    new_x = np.asarray(x, dtype=np.float64) + learning_rate * m / (np.sqrt(v) + tau)
    return new_x.astype(np.float32), {"m": m.astype(np.float32), "v": v.astype(np.float32)}


def _named(rule: SecondMoment) -> Callable[..., tuple[np.ndarray, dict[str, np.ndarray]]]:
    def step(
        x: np.ndarray,
        delta: np.ndarray,
        state: Mapping[str, np.ndarray] | None,
        *,
        learning_rate: float,
        beta1: float,
        beta2: float,
        tau: float,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return fedopt_step(x, delta, state, rule=rule, learning_rate=learning_rate, beta1=beta1, beta2=beta2, tau=tau)

    step.__name__ = f"fed{rule.value}_step"
    step.__doc__ = f"Apply one Fed{rule.value.capitalize()} server step to one tensor (see :func:`fedopt_step`)."
    return step


fedadam_step = _named(SecondMoment.ADAM)
fedyogi_step = _named(SecondMoment.YOGI)
fedadagrad_step = _named(SecondMoment.ADAGRAD)  # beta2 is unused by Adagrad
