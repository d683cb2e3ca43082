"""Update weights: example counts, uniform and capped shares, by hand and as invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedseg.configs.aggregation import Weighting
from fedseg.errors import AggregationError
from fedseg.federation.strategies import capped_shares, update_weights


def test_examples_and_uniform_by_hand() -> None:
    assert update_weights({"a": 10, "b": 30}, Weighting.EXAMPLES) == {"a": 0.25, "b": 0.75}
    assert update_weights({"a": 10, "b": 30}, "uniform") == {"a": 0.5, "b": 0.5}


def test_capped_water_filling_by_hand() -> None:
    # 100000 vs 10 vs 10, cap 0.5: a gets 0.5, the other half splits 10:10.
    w = update_weights({"a": 100000, "b": 10, "c": 10}, Weighting.CAPPED, max_share=0.5)
    assert w == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25})
    # 60/30/10 with cap 0.4: a -> 0.4; 0.6 left over 30:10 -> 0.45, 0.15; b over the cap -> 0.4; c gets 0.2.
    w = capped_shares({"a": 60, "b": 30, "c": 10}, 0.4)
    assert w == pytest.approx({"a": 0.4, "b": 0.4, "c": 0.2})


def test_capped_infeasible_cap_is_uniform() -> None:
    assert capped_shares({"a": 5, "b": 1, "c": 1}, 0.2) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_non_positive_counts_are_refused() -> None:
    with pytest.raises(AggregationError):
        update_weights({"a": 0, "b": 3}, Weighting.EXAMPLES)
    with pytest.raises(AggregationError):
        capped_shares({"a": -1, "b": 3}, 0.5)


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(1, 10**6), min_size=1, max_size=8),
       st.floats(0.05, 1.0))
def test_capped_invariants(counts: dict[str, int], cap: float) -> None:
    w = capped_shares(counts, cap)
    assert sum(w.values()) == pytest.approx(1.0)
    if cap * len(counts) >= 1.0:
        assert max(w.values()) <= cap * (1 + 1e-9)
    # order of the counts never matters, and a larger count never gets a smaller share
    keys = sorted(counts, key=counts.get)
    assert all(w[a] <= w[b] * (1 + 1e-9) for a, b in zip(keys, keys[1:]))
