"""Split assignment: exact shares by largest remainder, recorded splits never move, new cases fill deficits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fedseg.configs.preprocess import PreprocessConfig
from fedseg.data.splits import assign_splits, target_counts


def _counts(splits: dict[str, str]) -> dict[str, int]:
    return {s: list(splits.values()).count(s) for s in ("train", "val", "test")}


def test_ten_cases_with_val_fraction_0_3_give_exactly_three_val() -> None:
    for seed in range(20):  # every seed, not only a lucky one
        ids = [f"S{seed}_{i}" for i in range(10)]
        splits = assign_splits(ids, PreprocessConfig(val_fraction=0.3, split_seed=seed))
        assert _counts(splits) == {"train": 7, "val": 3, "test": 0}
    assert target_counts(10, 0.2, 0.2) == {"test": 2, "val": 2, "train": 6}
    assert target_counts(7, 0.3, 0.0) == {"test": 0, "val": 2, "train": 5}  # 2.1 / 4.9: train's remainder wins


def test_recorded_splits_never_change_and_new_cases_fill_the_split_most_below_its_share() -> None:
    config = PreprocessConfig(val_fraction=0.3, test_fraction=0.2)
    # a site whose first cases all went to test (e.g. settings changed): they stay there ...
    recorded = {f"old{i}": "test" for i in range(4)}
    ids = [*recorded, *(f"new{i}" for i in range(6))]
    splits = assign_splits(ids, config, recorded)
    assert all(splits[c] == "test" for c in recorded)
    # ... and the 6 new ones go to train and val, none to test (targets test 2, val 3, train 5: each new
    # case to the largest deficit, 5-4-3-3-2-2 -> train, train, val, train, val, train)
    assert _counts(splits) == {"train": 4, "val": 2, "test": 4}
    again = assign_splits(ids, config, splits)
    assert again == splits  # a rerun changes nothing


def test_rerun_is_independent_of_input_order() -> None:
    ids = [f"c{i}" for i in range(13)]
    config = PreprocessConfig(val_fraction=0.2, test_fraction=0.1, split_seed=3)
    assert assign_splits(ids, config) == assign_splits(list(reversed(ids)), config)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), val=st.floats(0.0, 0.6), test=st.floats(0.0, 0.35))
def test_fresh_assignment_matches_the_targets(n: int, val: float, test: float) -> None:
    config = PreprocessConfig(val_fraction=val, test_fraction=test)
    counts = _counts(assign_splits([f"c{i}" for i in range(n)], config))
    assert sum(counts.values()) == n and counts["train"] >= 1
    for name, fraction in (("val", val), ("test", test)):
        assert abs(counts[name] - fraction * n) < 1 or (counts[name] == 1 and fraction * n < 1)
