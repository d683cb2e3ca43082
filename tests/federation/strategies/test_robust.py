"""Coordinate-wise median, trimmed mean and norm clipping: worked examples and Byzantine invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedseg.errors import AggregationError
from fedseg.federation.strategies import (
    clip_delta,
    clip_scale,
    coordinate_median,
    coordinate_trimmed_mean,
    global_norm,
    median,
    trim_count,
    trimmed_mean,
)

FLOATS = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


def test_median_worked_example() -> None:
    arrays_ = [np.array([1.0, 10.0], np.float32), np.array([2.0, -5.0], np.float32), np.array([100.0, 0.0], np.float32)]
    np.testing.assert_array_equal(coordinate_median(arrays_), [2.0, 0.0])
    # even count: mean of the two middle values
    np.testing.assert_array_equal(coordinate_median([np.array([1.0]), np.array([3.0]), np.array([8.0]), np.array([0.0])]),
                                  [2.0])
    out = median([{"a": np.array([1.0], np.float32)}, {"a": np.array([3.0], np.float32)}])
    assert out["a"].dtype == np.float32 and out["a"][0] == 2.0


def test_trimmed_mean_worked_example() -> None:
    # 5 clients, beta 0.2 -> k = 1: drop 1 and 100, mean of 2, 3, 4 = 3
    values = [np.array([v], np.float32) for v in (3.0, 100.0, 2.0, 1.0, 4.0)]
    assert trim_count(5, 0.2) == 1 and trim_count(10, 0.2) == 2 and trim_count(4, 0.2) == 0
    np.testing.assert_array_equal(coordinate_trimmed_mean(values, 0.2), [3.0])
    # beta 0 is the plain mean: 110 / 5 = 22
    np.testing.assert_array_equal(coordinate_trimmed_mean(values, 0.0), [22.0])
    assert trimmed_mean([{"a": v} for v in values], 0.2)["a"][0] == 3.0
    with pytest.raises(AggregationError, match="trim_fraction"):
        coordinate_trimmed_mean(values, 0.5)
    with pytest.raises(AggregationError, match="one shape"):
        coordinate_trimmed_mean([np.zeros(2), np.zeros(3)], 0.1)


def test_clipping_worked_example() -> None:
    delta = {"a": np.array([3.0], np.float32), "b": np.array([4.0], np.float32)}  # norm 5
    assert global_norm(delta) == 5.0
    clipped, scale = clip_delta(delta, 1.0)
    assert scale == 0.2
    np.testing.assert_allclose(clipped["a"], [0.6], rtol=1e-7)
    np.testing.assert_allclose(clipped["b"], [0.8], rtol=1e-7)
    assert clip_delta(delta, 10.0)[1] == 1.0  # inside the bound: untouched
    assert clip_scale(5.0, 0.0) == 1.0  # 0 = off
    assert clip_scale(0.0, 1.0) == 1.0  # a zero delta stays zero
    with pytest.raises(AggregationError):
        clip_scale(1.0, -1.0)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_robust_results_stay_within_the_coordinate_range(data: st.DataObject) -> None:
    k = data.draw(st.integers(1, 7))
    xs = [data.draw(arrays(np.float32, (6,), elements=FLOATS)) for _ in range(k)]
    beta = data.draw(st.floats(0.0, 0.49))
    stacked = np.stack(xs)
    for out in (coordinate_median(xs), coordinate_trimmed_mean(xs, beta)):
        assert np.all(out >= stacked.min(axis=0)) and np.all(out <= stacked.max(axis=0))
    # identical inputs give themselves; order does not matter (exactly: sorting is order-free)
    assert np.array_equal(coordinate_median([xs[0]] * k), xs[0])
    perm = data.draw(st.permutations(range(k)))
    assert np.array_equal(coordinate_median([xs[i] for i in perm]), coordinate_median(xs))
    assert np.array_equal(coordinate_trimmed_mean([xs[i] for i in perm], beta), coordinate_trimmed_mean(xs, beta))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_one_byzantine_update_stays_within_the_honest_range(data: st.DataObject) -> None:
    honest_count = data.draw(st.integers(4, 8))
    honest = [data.draw(arrays(np.float32, (5,), elements=st.floats(-10, 10, width=32))) for _ in range(honest_count)]
    attacker = (data.draw(st.sampled_from(honest)).astype(np.float64) * 1e6 + 1e6).astype(np.float32)
    everyone = [*honest, attacker]
    low, high = np.stack(honest).min(axis=0), np.stack(honest).max(axis=0)
    # trim fraction with k >= 1 for every size drawn: floor(0.2 * m) >= 1 for m >= 5
    for out in (coordinate_median(everyone), coordinate_trimmed_mean(everyone, 0.2)):
        assert np.all(out >= low) and np.all(out <= high)
    assert math.isfinite(float(coordinate_median(everyone).sum()))
