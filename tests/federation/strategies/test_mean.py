"""FedAvg, FedAvgM and the adaptive server optimizers: worked examples and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedseg.configs.aggregation import AggregationConfig, Strategy
from fedseg.errors import AggregationError
from fedseg.federation.strategies import (
    REGISTRY,
    WeightedMean,
    fedadagrad_step,
    fedadam_step,
    fedavg,
    fedavgm_step,
    fedyogi_step,
    get_strategy,
    strategy_params,
    weighted_mean,
)

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


def test_fedavg_worked_example() -> None:
    # (1*1 + 3*5) / 4 = 4 ; (1*[2, -2] + 3*[6, 2]) / 4 = [5, 1]
    a = {"w": np.array([1.0], np.float32), "b": np.array([2.0, -2.0], np.float32)}
    b = {"w": np.array([5.0], np.float32), "b": np.array([6.0, 2.0], np.float32)}
    out = fedavg([(a, 1), (b, 3)])
    assert out["w"].dtype == np.float32
    np.testing.assert_array_equal(out["w"], [4.0])
    np.testing.assert_array_equal(out["b"], [5.0, 1.0])


def test_fedavg_accumulates_float16_in_float64() -> None:
    # 2049 is not a float16; float16 inputs 2048 and 2050 with equal weights must give 2049 exactly.
    a = {"x": np.array([2048.0], np.float16)}
    b = {"x": np.array([2050.0], np.float16)}
    np.testing.assert_array_equal(fedavg([(a, 1), (b, 1)])["x"], [2049.0])


def test_fedavg_rejects_bad_inputs() -> None:
    with pytest.raises(AggregationError, match="no models"):
        fedavg([])
    with pytest.raises(AggregationError, match="positive"):
        fedavg([({"x": np.ones(2, np.float32)}, 0)])
    with pytest.raises(AggregationError, match="shape"):
        fedavg([({"x": np.ones(2, np.float32)}, 1), ({"x": np.ones(3, np.float32)}, 1)])
    with pytest.raises(AggregationError, match="names"):
        fedavg([({"x": np.ones(2, np.float32)}, 1), ({"y": np.ones(2, np.float32)}, 1)])


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(1, 6))
def test_fedavg_matches_numpy_weighted_mean(data: st.DataObject, k: int) -> None:
    shape = data.draw(st.sampled_from([(3,), (2, 3), (1, 2, 2)]))
    xs = [data.draw(arrays(np.float32, shape, elements=FLOATS)) for _ in range(k)]
    ns = [data.draw(st.integers(1, 100_000)) for _ in range(k)]
    out = fedavg([({"t": x}, n) for x, n in zip(xs, ns)])["t"]
    expected = np.average(np.stack(xs).astype(np.float64), axis=0, weights=ns).astype(np.float32)
    scale = max(1.0, float(np.max(np.abs(np.stack(xs)))))
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-7 * scale)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (4,), elements=FLOATS), st.lists(st.integers(1, 10_000), min_size=1, max_size=6))
def test_identical_updates_average_to_themselves(x: np.ndarray, ns: list[int]) -> None:
    np.testing.assert_array_equal(fedavg([({"t": x}, n) for n in ns])["t"], x)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_order_and_count_scaling_do_not_matter(data: st.DataObject) -> None:
    k = data.draw(st.integers(2, 5))
    xs = [data.draw(arrays(np.float32, (5,), elements=FLOATS)) for _ in range(k)]
    ns = [data.draw(st.integers(1, 1000)) for _ in range(k)]
    c = data.draw(st.integers(2, 1000))
    perm = data.draw(st.permutations(range(k)))
    base = fedavg([({"t": x}, n) for x, n in zip(xs, ns)])["t"]
    shuffled = fedavg([({"t": xs[i]}, ns[i]) for i in perm])["t"]
    scaled = fedavg([({"t": x}, n * c) for x, n in zip(xs, ns)])["t"]
    tol = 2e-7 * max(1.0, float(np.max(np.abs(np.stack(xs)))))
    np.testing.assert_allclose(shuffled, base, rtol=0, atol=tol)
    np.testing.assert_allclose(scaled, base, rtol=0, atol=tol)


def test_streaming_accumulator_matches_pure_function_and_clip_scale() -> None:
    acc = WeightedMean()
    acc.add({"t": np.array([2.0, 4.0], np.float32)}, 1, scale=0.5)  # counts as [1, 2]
    acc.add({"t": np.array([3.0, 3.0], np.float32)}, 1)
    np.testing.assert_array_equal(acc.mean()["t"], [2.0, 2.5])
    assert acc.count == 2 and acc.total_weight == 2.0
    assert weighted_mean([(np.array([0.0], np.float32), 1), (np.array([9.0], np.float32), 2)])[0] == 6.0


def test_fedavgm_worked_example() -> None:
    # m = 0.5*2 + 1 = 2 ; x = 10 + 0.5*2 = 11
    x, state = fedavgm_step(np.array([10.0], np.float32), np.array([1.0]), {"m": np.array([2.0], np.float32)},
                            learning_rate=0.5, momentum=0.5)
    np.testing.assert_array_equal(x, [11.0])
    np.testing.assert_array_equal(state["m"], [2.0])
    # First round: m starts at 0, so momentum 0 and lr 1 is plain FedAvg on the delta.
    x0, s0 = fedavgm_step(np.array([1.0], np.float32), np.array([0.25]), None, learning_rate=1.0, momentum=0.9)
    np.testing.assert_array_equal(x0, [1.25])
    np.testing.assert_array_equal(s0["m"], [0.25])


def test_fedadam_worked_example() -> None:
    # beta1 0.5: m = 0.5*0 + 0.5*2 = 1 ; beta2 0: v = 4 ; x = 0 + 1 * 1 / (2 + 1) = 1/3
    x, state = fedadam_step(np.zeros(1, np.float32), np.array([2.0]), None,
                            learning_rate=1.0, beta1=0.5, beta2=0.0, tau=1.0)
    np.testing.assert_allclose(x, [1 / 3], rtol=1e-7)
    np.testing.assert_array_equal(state["m"], [1.0])
    np.testing.assert_array_equal(state["v"], [4.0])


def test_fedadagrad_worked_example() -> None:
    # v starts at tau^2 = 16: v = 16 + 9 = 25 ; m = 3 (beta1 0) ; x = 1 + 3 / (5 + 4) = 4/3
    x, state = fedadagrad_step(np.ones(1, np.float32), np.array([3.0]), None,
                               learning_rate=1.0, beta1=0.0, beta2=0.5, tau=4.0)
    np.testing.assert_allclose(x, [4 / 3], rtol=1e-7)
    np.testing.assert_array_equal(state["v"], [25.0])
    # second round keeps accumulating: v = 25 + 9 = 34
    _, state2 = fedadagrad_step(x, np.array([3.0]), state, learning_rate=1.0, beta1=0.0, beta2=0.5, tau=4.0)
    np.testing.assert_array_equal(state2["v"], [34.0])


def test_fedyogi_worked_example() -> None:
    # v0 = tau^2 = 1 ; sign(1 - 4) = -1 -> v = 1 + 0.75 * 4 = 4 ; m = 2 ; x = 0 + 2 / (2 + 1) = 2/3
    x, state = fedyogi_step(np.zeros(1, np.float32), np.array([2.0]), None,
                            learning_rate=1.0, beta1=0.0, beta2=0.25, tau=1.0)
    np.testing.assert_allclose(x, [2 / 3], rtol=1e-7)
    np.testing.assert_array_equal(state["v"], [4.0])
    # Yogi's v grows additively when delta^2 > v, Adam's would shrink towards delta^2: v = 4 - 0.75*1*sign(3) = 3.25
    _, state2 = fedyogi_step(x, np.array([1.0]), state, learning_rate=1.0, beta1=0.0, beta2=0.25, tau=1.0)
    np.testing.assert_array_equal(state2["v"], [3.25])


def test_registry_covers_every_strategy_and_records_params() -> None:
    assert set(REGISTRY) == set(Strategy)
    config = AggregationConfig(strategy=Strategy.FEDADAM, clip_norm=2.0)
    assert strategy_params(Strategy.FEDADAM, config) == {
        "server_learning_rate": 1.0, "beta1": 0.9, "beta2": 0.99, "tau": 1e-3, "clip_norm": 2.0}
    assert strategy_params("fedavg", config) == {"clip_norm": 2.0}
    assert get_strategy("trimmed-mean").state_slots == ()
    with pytest.raises(AggregationError, match="unknown strategy 'krum'"):
        get_strategy("krum")


def test_registry_steps_equal_the_pure_functions() -> None:
    cfg = AggregationConfig(server_learning_rate=0.5, beta1=0.5, beta2=0.5, tau=0.1, server_momentum=0.5)
    x, d = np.array([1.0, -1.0], np.float32), np.array([0.2, 0.4])
    for strategy, fn in [(Strategy.FEDADAM, fedadam_step), (Strategy.FEDYOGI, fedyogi_step),
                         (Strategy.FEDADAGRAD, fedadagrad_step)]:
        got, _ = REGISTRY[strategy].step(x, d, None, cfg)
        want, _ = fn(x, d, None, learning_rate=0.5, beta1=0.5, beta2=0.5, tau=0.1)
        np.testing.assert_array_equal(got, want)
    got, _ = REGISTRY[Strategy.FEDAVGM].step(x, d, None, cfg)
    np.testing.assert_array_equal(got, fedavgm_step(x, d, None, learning_rate=0.5, momentum=0.5)[0])
    got, state = REGISTRY[Strategy.FEDAVG].step(x, d, None, cfg)
    np.testing.assert_allclose(got, [1.2, -0.6], rtol=1e-7)
    assert state == {}
