"""Rényi-DP accounting of the (Poisson-)subsampled Gaussian mechanism, and the noise it needs for a target ε.

One step of DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) samples each
record (here: each case, a patient) independently with probability ``q``, clips each sampled record's
contribution to L2 norm ``C`` and adds Gaussian noise of standard deviation ``sigma * C`` to the sum.
Its Rényi divergence of order ``alpha`` (Mironov, "Rényi Differential Privacy", CSF 2017) is bounded
as in Mironov, Talwar and Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism" (2019):
the exact binomial expansion for integer orders (their §3.3, eq. 7) and the two-sided erfc series for
fractional ones (§3.3, eq. 8-9), both in log space. RDP composes by addition over steps. The
conversion to (ε, δ) is the one Opacus and Google's ``dp-accounting`` use (Balle et al. 2020,
"Hypothesis Testing Interpretations and Renyi Differential Privacy", Thm. 21):
``ε = rdp(α) + log((α-1)/α) - (log δ + log α)/(α - 1)``, minimised over the orders.

``q = 1`` (no sampling) is the plain Gaussian mechanism, ``rdp(α) = α / (2 sigma²)``: the accounting of
central DP-FedAvg with every site in every round (McMahan et al., ICLR 2018).

Edge cases, decided: ``q = 0`` or ``steps = 0`` spends nothing (ε = 0); ``sigma = 0`` is no privacy (ε = inf).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fedseg.errors import ConfigError

__all__ = ["ACCOUNTANT", "DEFAULT_ORDERS", "composed_epsilon", "epsilon", "noise_multiplier_for", "rdp"]

#: The name recorded in manifests next to every ε this module computes.
ACCOUNTANT = "rdp-sgm (Mironov-Talwar-Zhang 2019; Balle et al. 2020 conversion)"

#: Opacus's and TensorFlow Privacy's orders: 1.1 .. 10.9 in steps of 0.1, then 12 .. 63.
DEFAULT_ORDERS: tuple[float, ...] = tuple(1 + x / 10.0 for x in range(1, 100)) + tuple(float(a) for a in range(12, 64))


def _log_add(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    log_a = -math.inf
    for k in range(alpha + 1):
        log_coef = (math.lgamma(alpha + 1) - math.lgamma(k + 1) - math.lgamma(alpha - k + 1)
                    + k * math.log(q) + (alpha - k) * math.log1p(-q))
        log_a = _log_add(log_a, log_coef + (k * k - k) / (2 * sigma**2))
    return log_a


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    """Sum the two erfc series of MTZ19 §3.3 for a fractional order, vectorised over chunks of terms.

    Terms are summed until both series' terms fall below exp(-30), as Opacus and TF Privacy stop.
    """
    import numpy as np  # here, not at the top: the CLI's --help must not import numpy
    from scipy import special

    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    parts: list[np.ndarray] = []
    signs: list[np.ndarray] = []
    start, size = 0, 256
    while True:
        k = np.arange(start, start + size, dtype=np.float64)
        j = alpha - k
        log_coef = special.gammaln(alpha + 1) - special.gammaln(k + 1) - special.gammaln(j + 1)
        sign = special.gammasgn(j + 1)
        log_erfc0 = math.log(2) + special.log_ndtr(-(k - z0) / sigma)  # erfc(x) = 2 Phi(-x sqrt 2)
        log_erfc1 = math.log(2) + special.log_ndtr(-(z0 - j) / sigma)
        s0 = log_coef + k * math.log(q) + j * math.log1p(-q) + (k * k - k) / (2 * sigma**2) + math.log(0.5) + log_erfc0
        s1 = log_coef + j * math.log(q) + k * math.log1p(-q) + (j * j - j) / (2 * sigma**2) + math.log(0.5) + log_erfc1
        below = np.flatnonzero(np.maximum(s0, s1) < -30)
        stop = int(below[0]) + 1 if below.size else size
        parts.append(np.concatenate([s0[:stop], s1[:stop]]))
        signs.append(np.concatenate([sign[:stop], sign[:stop]]))
        if below.size:
            break
        start, size = start + size, size * 2
    terms, sign_all = np.concatenate(parts), np.concatenate(signs)
    top = float(terms.max())
    total = float(np.sum(sign_all * np.exp(terms - top)))
    return top + math.log(total) if total > 0 else -math.inf


def rdp(q: float, sigma: float, steps: int, orders: Sequence[float] = DEFAULT_ORDERS) -> list[float]:
    """Return the RDP of ``steps`` compositions of the sampled Gaussian mechanism at each of ``orders``."""
    if not 0.0 <= q <= 1.0:
        raise ConfigError(f"privacy: the sampling rate must lie in [0, 1], got {q}")
    if sigma < 0 or steps < 0:
        raise ConfigError(f"privacy: noise multiplier and steps must be >= 0, got {sigma} and {steps}")
    out = []
    for alpha in orders:
        if q == 0 or steps == 0:
            value = 0.0
        elif sigma == 0:
            value = math.inf
        elif q == 1.0:
            value = alpha / (2 * sigma**2)
        elif float(alpha).is_integer():
            value = _log_a_int(q, sigma, int(alpha)) / (alpha - 1)
        else:
            value = _log_a_frac(q, sigma, alpha) / (alpha - 1)
        out.append(value * steps)
    return out


def epsilon(q: float, sigma: float, steps: int, delta: float, orders: Sequence[float] = DEFAULT_ORDERS) -> float:
    """Return the ε of (ε, ``delta``)-DP after ``steps`` sampled Gaussian steps (the best order's bound)."""
    return composed_epsilon([(q, sigma, steps)], delta, orders)


def composed_epsilon(mechanisms: Sequence[tuple[float, float, int]], delta: float,
                     orders: Sequence[float] = DEFAULT_ORDERS) -> float:
    """Return the ε of running every ``(q, sigma, steps)`` of ``mechanisms`` in turn (their RDP adds up)."""
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"privacy: delta must lie in (0, 1), got {delta}")
    total = [0.0] * len(orders)
    for q, sigma, steps in mechanisms:
        if q > 0 and steps > 0:
            total = [a + b for a, b in zip(total, rdp(q, sigma, steps, orders))]
    if not any(total):
        return 0.0  # nothing was released about the data
    best = math.inf
    for alpha, value in zip(orders, total):
        eps = value + math.log((alpha - 1) / alpha) - (math.log(delta) + math.log(alpha)) / (alpha - 1)
        best = min(best, eps)
    return max(best, 0.0)


def noise_multiplier_for(target_epsilon: float, delta: float, q: float, steps: int, *,
                         tolerance: float = 0.01) -> float:
    """Return the smallest noise multiplier (within ``tolerance`` of ε) whose ε after ``steps`` stays <= the target.

    Bisection as in Opacus's ``get_noise_multiplier``: the returned sigma always meets the target
    (ε(sigma) <= ``target_epsilon``), and ε(sigma) > ``target_epsilon - tolerance``.
    """
    if target_epsilon <= 0:
        raise ConfigError(f"privacy: target_epsilon must be > 0, got {target_epsilon}")
    if epsilon(q, 0.0, steps, delta) <= target_epsilon:  # nothing sampled, nothing spent
        return 0.0
    low, high = 0.0, 10.0
    while epsilon(q, high, steps, delta) > target_epsilon:
        low, high = high, 2 * high
        if high > 1e6:
            raise ConfigError(f"privacy: no noise multiplier below 1e6 reaches ε = {target_epsilon} "
                              f"with δ = {delta} over {steps} steps at sampling rate {q}")
    eps_high = epsilon(q, high, steps, delta)
    while target_epsilon - eps_high > tolerance:
        mid = (low + high) / 2
        eps_mid = epsilon(q, mid, steps, delta)
        if eps_mid <= target_epsilon:
            high, eps_high = mid, eps_mid
        else:
            low = mid
    return high
