"""Update screening rules: each returns its reason on its case and None otherwise."""

from __future__ import annotations

import pytest

from fedseg.errors import ArtifactError, BindingError, SignatureError
from fedseg.federation import screening as s


def test_manifest_rules() -> None:
    good = {"round": 3, "parent_sha256": "ab" * 32, "num_examples": 7, "weights": "delta", "model": {"w": [1]},
            "created_at": "2024-01-01T00:00:00Z"}
    assert s.check_round(good, 3) is None
    assert s.check_round(good, 4) == s.Reason("round", "expected round 4, the update is for round 3")
    assert s.check_round({"round": True}, 1) is not None  # a bool is not a round number
    assert s.check_parent(good, "ab" * 32) is None
    assert "expected parent cdcdcdcdcdcd" in s.check_parent(good, "cd" * 32).detail
    assert s.check_examples(good, 7) is None
    for bad in (0, -1, 8, 2.5, "7", None):
        reason = s.check_examples({"num_examples": bad}, 7)
        assert reason is not None and reason.rule == "examples" and "1..7" in reason.detail
    assert s.check_weights(good) is None and s.check_weights({"weights": "sparse"}).rule == "weights"
    assert s.check_model(good, {"w": [1]}) is None
    assert "differs from the plan's in w" in s.check_model(good, {"w": [2]}).detail
    assert s.check_created_at(good) is None
    assert s.check_created_at({"created_at": "2024-01-01T00:00:00"}).rule == "created-at"  # no timezone
    assert str(s.Reason("round", "x")) == "round: x"


def test_errors_become_reasons() -> None:
    assert s.reason_from_error(SignatureError("unknown key")).rule == "signature"
    assert s.reason_from_error(BindingError("other plan")).rule == "binding"
    assert s.reason_from_error(ArtifactError("NaN")).rule == "payload"


def test_robust_z_worked_example() -> None:
    # norms 10, 30, 50, 70, 1000: median 50, |dev| = 40, 20, 0, 20, 950 -> MAD 20 -> scale 29.652
    # (above the floor 0.5 * 50 = 25)
    norms = {"a": 10.0, "b": 30.0, "c": 50.0, "d": 70.0, "e": 1000.0}
    z = s.robust_z_scores(norms)
    assert z["c"] == 0.0
    assert z["e"] == pytest.approx(950 / (20 * 1.4826))
    assert z["a"] == pytest.approx(-40 / (20 * 1.4826))
    flagged = s.norm_outliers(norms, 3.5)
    assert list(flagged) == ["e"] and flagged["e"].rule == "norm-outlier" and "32.0" in flagged["e"].detail


def test_relative_floor_keeps_honest_heterogeneity() -> None:
    # three non-IID sites: median 1.1, MAD 0.1 -> 0.148, but the floor 0.5 * 1.1 = 0.55 is the scale
    z = s.robust_z_scores({"a": 1.0, "b": 1.1, "c": 1.3})
    assert z["c"] == pytest.approx(0.2 / 0.55)
    assert s.norm_outliers({"a": 1.0, "b": 1.1, "c": 1.3}, 3.5) == {}
    boosted = s.norm_outliers({"a": 1.0, "b": 1.1, "c": 11.0}, 3.5)  # a x10 boosted update still stands out
    assert list(boosted) == ["c"]


def test_outlier_rule_edge_cases() -> None:
    assert s.norm_outliers({"a": 1.0, "b": 1000.0}, 3.5) == {}  # fewer than 3: skipped
    assert s.norm_outliers({"a": 1.0, "b": 1.0, "c": 1000.0}, 0.0) == {}  # threshold 0: off
    assert s.norm_outliers({"a": 2.0, "b": 2.0, "c": 2.0}, 3.5) == {}  # all equal: nobody is an outlier
    # MAD is 0 (two equal norms): mean absolute deviation stands in: |dev| = 0, 0, 9 -> 1.2533 * 3
    z = s.robust_z_scores({"a": 1.0, "b": 1.0, "c": 10.0})
    assert z["c"] == pytest.approx(9 / (1.2533 * 3))
    assert list(s.norm_outliers({"a": 1.0, "b": 1.0, "c": 10.0}, 2.0)) == ["c"]
    # small norms are never flagged (a small delta cannot dominate a mean)
    assert s.norm_outliers({"a": 0.0, "b": 10.0, "c": 10.1, "d": 9.9}, 3.5) == {}


def test_examples_bounded_by_enrolled_cases() -> None:
    from fedseg.federation.screening import check_examples, examples_bound

    assert examples_bound(100_000, 10, 0.1) == 11
    assert examples_bound(100_000, None, 0.1) == 100_000
    assert check_examples({"num_examples": 11}, 100_000, enrolled=10, tolerance=0.1) is None
    reason = check_examples({"num_examples": 100_000}, 100_000, enrolled=10, tolerance=0.1)
    assert reason is not None and reason.rule == "examples" and "10 enrolled" in reason.detail


def test_direction_screen_rejects_a_sign_flip_and_passes_non_iid_spread() -> None:
    from fedseg.federation.screening import direction_outliers

    honest = {"a": 0.82, "b": 0.55, "c": 0.74}
    assert direction_outliers(honest, 3.5, 0.25) == {}
    flipped = {"a": 0.82, "b": 0.74, "c": -0.70}
    out = direction_outliers(flipped, 3.5, 0.25)
    assert set(out) == {"c"} and out["c"].rule == "direction"
    # fewer than three updates: cannot judge; threshold 0: off
    assert direction_outliers({"a": 0.9, "b": -0.9}, 3.5, 0.25) == {}
    assert direction_outliers(flipped, 0.0, 0.25) == {}
