"""The RDP accountant against published and peer values; the noise search; the budget check."""

from __future__ import annotations

import math

import pytest

from fedseg.errors import ConfigError
from fedseg.privacy import (
    PrivacyConfig,
    PrivacyMode,
    central_schedule,
    epsilon,
    noise_multiplier_for,
    rdp,
    site_schedule,
)

# (sampling rate, noise multiplier, steps, delta, epsilon): computed with opacus 1.6.0's RDPAccountant
# (default orders) and checked against this module to 1e-9; they stay here so the test runs without opacus.
OPACUS = [
    (256 / 60000, 1.1, 60 * 235, 1e-5, 2.6003429386103023),
    (0.01, 1.0, 1000, 1e-5, 2.1013652716430564),
    (0.1, 0.8, 50, 1e-5, 9.233989368735447),
    (1.0, 2.0, 10, 1e-5, 8.079406222420491),
    (0.5, 1.5, 40, 1e-3, 10.346283866158815),
]


@pytest.mark.parametrize(("q", "sigma", "steps", "delta", "expected"), OPACUS)
def test_epsilon_matches_opacus_values(q: float, sigma: float, steps: int, delta: float, expected: float) -> None:
    assert epsilon(q, sigma, steps, delta) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize(("sigma", "epochs", "published"), [(1.1, 60, 3.01), (0.7, 45, 7.10)])
def test_classic_conversion_matches_tensorflow_privacy_mnist_table(sigma: float, epochs: int, published: float) -> None:
    # TensorFlow Privacy's MNIST tutorial (N = 60000, batch 256, δ = 1e-5) published ε with the classic
    # conversion ε = min_α rdp(α) - log δ / (α - 1) (Mironov 2017, Prop. 3) over the same orders.
    orders = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64))
    steps = math.ceil(epochs * 60000 / 256)
    classic = min(v - math.log(1e-5) / (a - 1) for a, v in zip(orders, rdp(256 / 60000, sigma, steps, orders)))
    assert classic == pytest.approx(published, abs=0.005)


def test_against_opacus_when_installed() -> None:
    accountants = pytest.importorskip("opacus.accountants")
    for q, sigma, steps, delta, _ in OPACUS[1:3]:
        peer = accountants.RDPAccountant()
        peer.history = [(sigma, q, steps)]
        assert epsilon(q, sigma, steps, delta) == pytest.approx(peer.get_epsilon(delta), rel=1e-8)


def test_gaussian_mechanism_without_sampling_is_closed_form() -> None:
    assert rdp(1.0, 2.0, 3, orders=[2.0, 5.0]) == pytest.approx([3 * 2 / 8, 3 * 5 / 8])


def test_edge_cases_are_decided() -> None:
    assert epsilon(0.0, 1.0, 100, 1e-5) == 0.0
    assert epsilon(0.1, 1.0, 0, 1e-5) == 0.0
    assert epsilon(0.1, 0.0, 10, 1e-5) == math.inf
    with pytest.raises(ConfigError, match="delta"):
        epsilon(0.1, 1.0, 10, 0.0)


def test_epsilon_grows_with_steps_and_shrinks_with_noise() -> None:
    assert epsilon(0.05, 1.0, 100, 1e-5) < epsilon(0.05, 1.0, 200, 1e-5)
    assert epsilon(0.05, 2.0, 100, 1e-5) < epsilon(0.05, 1.0, 100, 1e-5)


def test_noise_search_meets_the_target_tightly() -> None:
    sigma = noise_multiplier_for(3.0, 1e-5, 0.05, 500)
    assert sigma == pytest.approx(1.884765625)  # opacus 1.6.0 get_noise_multiplier(accountant="rdp")
    assert 3.0 - 0.01 < epsilon(0.05, sigma, 500, 1e-5) <= 3.0


def test_site_schedule_derives_noise_from_enrolled_cases_and_refuses_past_budget() -> None:
    config = PrivacyConfig(mode=PrivacyMode.DP_SGD, target_epsilon=4.0, delta=1e-5)
    schedule = site_schedule(config, enrolled_cases=40, train_cases=40, batch_size=4, steps_per_round=5, rounds=3,
                             site="a")
    assert schedule.sampling_rate == pytest.approx(0.1)
    assert schedule.epsilon_after(3) <= 4.0 < schedule.epsilon_after(4)
    schedule.check_round(3, "site a")
    with pytest.raises(ConfigError, match="round 4 would spend"):
        schedule.check_round(4, "site a")
    record = schedule.record(PrivacyMode.DP_SGD, 2)
    assert record["steps"] == 10 and record["epsilon"] < 4.0 and record["accountant"].startswith("rdp")
    with pytest.raises(ConfigError, match="enrolled case count"):
        site_schedule(config, enrolled_cases=None, train_cases=4, batch_size=1, steps_per_round=1, rounds=1, site="a")


def test_central_schedule_is_one_gaussian_per_round() -> None:
    schedule = central_schedule(PrivacyConfig(mode=PrivacyMode.CENTRAL, target_epsilon=8.0), rounds=10)
    assert schedule.sampling_rate == 1.0 and schedule.steps_per_round == 1
    assert 7.99 < schedule.epsilon_after(10) <= 8.0


def test_config_validates() -> None:
    with pytest.raises(ConfigError, match="delta"):
        PrivacyConfig(delta=0.5)
    with pytest.raises(ConfigError, match="max_grad_norm"):
        PrivacyConfig(max_grad_norm=0.0)
