"""FedAvgM: server momentum on the averaged client delta.

Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual
Classification", arXiv:1909.06335, 2019; also the SGD-with-momentum server of Reddi et al. 2021
("Adaptive Federated Optimization", ICLR). With ``delta`` the example-weighted mean of (client model -
global model):

    m <- momentum * m + delta
    x <- x + server_learning_rate * m

``m`` starts at zero and is the coordinator's state between rounds (one array per tensor). With momentum
0 and learning rate 1 this is plain FedAvg. Arithmetic in float64; the model is returned as float32 and
the state as float32 (what the coordinator stores).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["fedavgm_step"]


def fedavgm_step(
    x: np.ndarray,
    delta: np.ndarray,
    state: Mapping[str, np.ndarray] | None,
    *,
    learning_rate: float,
    momentum: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Apply one FedAvgM server step to one tensor; return ``(new x, {"m": new momentum})``."""
    delta64 = np.asarray(delta, dtype=np.float64)
    m_prev = np.zeros_like(delta64) if state is None else np.asarray(state["m"], dtype=np.float64)
    m = momentum * m_prev + delta64
    new_x = np.asarray(x, dtype=np.float64) + learning_rate * m
    return new_x.astype(np.float32), {"m": m.astype(np.float32)}
