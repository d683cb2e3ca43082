"""Federated validation: pooled case-weighted Dice, the curve from the ledger, best point and plateau."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.workflow.coordinator import fed_validation as fv
from fedseg.workflow.coordinator.fed_validation import SiteScore, best_point, curve, early_stop, pooled, site_score

WIDE = {"enrolled": {f"s{i}": 100 for i in range(6)} | {"site-a": 100, "site-b": 100}, "robust": False}


def _point(round_: int, mean: float) -> dict:
    return {"round": round_, "sha256": f"g{round_}", "dice": {"WT": mean, "TC": mean, "ET": mean}, "mean": mean}


def test_pooled_is_case_weighted_per_region() -> None:
    a = SiteScore("site-a", 3, {"WT": 0.8, "TC": 0.6, "ET": 0.5})
    b = SiteScore("site-b", 1, {"WT": 0.4, "TC": 0.2, "ET": 0.1})
    p = pooled(2, "abc", [b, a], **WIDE)
    assert p is not None
    # WT (3*0.8 + 0.4)/4 = 0.7, TC (1.8 + 0.2)/4 = 0.5, ET (1.5 + 0.1)/4 = 0.4; mean over regions 1.6/3
    assert p["dice"] == pytest.approx({"WT": 0.7, "TC": 0.5, "ET": 0.4})
    assert p["mean"] == pytest.approx(1.6 / 3) and p["cases"] == 4 and p["round"] == 2 and p["sha256"] == "abc"
    assert [s["site"] for s in p["sites"]] == ["site-a", "site-b"] and p["sites"][0]["cases"] == 3
    assert pooled(2, "abc", [], **WIDE) is None


def test_a_site_claiming_many_cases_is_capped_by_its_enrolment() -> None:
    liar = SiteScore("site-a", 10**9, {"WT": 1.0, "TC": 1.0, "ET": 1.0})
    honest = [SiteScore("site-b", 4, {"WT": 0.5, "TC": 0.4, "ET": 0.3}),
              SiteScore("site-c", 2, {"WT": 0.2, "TC": 0.1, "ET": 0.0})]
    p = pooled(1, "x", [liar, *honest], enrolled={"site-a": 2, "site-b": 8, "site-c": 8}, robust=False)
    # weights 2, 4, 2: WT (2*1 + 4*0.5 + 2*0.2)/8 = 0.55, TC (2 + 1.6 + 0.2)/8 = 0.475, ET (2 + 1.2)/8 = 0.4
    assert p["dice"] == pytest.approx({"WT": 0.55, "TC": 0.475, "ET": 0.4}) and p["cases"] == 8
    assert p["sites"][0]["cases"] == 10**9  # what it claimed is kept in the record
    # one site's enrolment unknown: every site weighs the same: WT (1 + 0.5 + 0.2)/3
    p = pooled(1, "x", [liar, *honest], enrolled={"site-b": 8, "site-c": 8}, robust=False)
    assert p["dice"] == pytest.approx({"WT": 1.7 / 3, "TC": 1.5 / 3, "ET": 1.3 / 3})
    # robust strategies: the median of the sites' values, whatever the counts
    p = pooled(1, "x", [liar, *honest], enrolled={"site-a": 10**9}, robust=True)
    assert p["dice"] == pytest.approx({"WT": 0.5, "TC": 0.4, "ET": 0.3})


def test_pooling_follows_the_plan_version_in_force(tmp_path: Path) -> None:
    from dataclasses import replace

    from fedseg.configs.aggregation import Strategy
    from fedseg.federation.plan import load_plan
    from tests._store_fed import make_federation

    plan = load_plan(make_federation(tmp_path))
    assert fv.pooling(plan, 1) == {"enrolled": {"site-a": 2, "site-b": 2, "site-c": 2}, "robust": False}
    median = plan.with_settings(aggregation=replace(plan.aggregation, strategy=Strategy.MEDIAN))
    assert fv.pooling(median, 1)["robust"]


def test_site_scores_are_only_well_formed_site_aggregates() -> None:
    good = {"val_dice_before": {"WT": 0.5, "TC": 0.25, "ET": 1}, "val_cases": 3, "val_dice_after": None}
    assert fv.from_metrics("s", good) == SiteScore("s", 3, {"WT": 0.5, "TC": 0.25, "ET": 1.0})
    assert fv.from_metrics("s", {"steps": 4}) is None  # fewer than metrics_min_cases: the site kept it
    assert fv.from_metrics("s", None) is None
    assert site_score("s", {"WT": 0.5, "TC": 0.5}, 3) is None  # a region missing
    assert site_score("s", {"WT": 1.5, "TC": 0.5, "ET": 0.5}, 3) is None  # not a Dice
    assert site_score("s", {"WT": float("nan"), "TC": 0.5, "ET": 0.5}, 3) is None
    assert site_score("s", {"WT": 0.5, "TC": 0.5, "ET": 0.5}, 0) is None
    assert site_score("s", {"WT": 0.5, "TC": 0.5, "ET": 0.5}, True) is None


def test_curve_from_ledger_entries_in_round_order() -> None:
    entries = [{"event": "global-written", "round": 1, "validation": _point(0, 0.2)},
               {"event": "global-written", "round": 2},  # no site reported a score of global 1
               {"event": "update-accepted", "validation": _point(9, 0.9)},  # not a validation record
               {"event": fv.GLOBAL_VALIDATED, "validation": _point(3, 0.5)},
               {"event": "global-written", "round": 3, "validation": _point(2, 0.4)}]
    assert [p["round"] for p in curve(entries)] == [0, 2, 3]
    assert [p["round"] for p in curve(entries, _point(4, 0.1))] == [0, 2, 3, 4]
    assert [p["round"] for p in curve(entries, _point(2, 0.1))] == [0, 2, 3]  # recorded already: the ledger's


def test_best_point_and_early_stop_hand_checked() -> None:
    points = [_point(0, 0.5), _point(1, 0.6), _point(2, 0.6), _point(3, 0.59)]
    assert best_point(points, 1e-4)["round"] == 1  # a tie does not improve: the first maximum is kept
    assert early_stop(points, 2, 1e-4)  # rounds 2 and 3 did not improve on round 1
    assert not early_stop(points, 3, 1e-4)
    assert not early_stop(points, 0, 1e-4)  # patience 0: early stop off
    rising = [_point(0, 0.5), _point(1, 0.6), _point(2, 0.7)]
    assert best_point(rising, 0.15)["round"] == 2  # 0.6 is within 0.15 of 0.5; 0.7 beats it by 0.2
    assert early_stop(rising[:2], 1, 0.15)  # 0.6 - 0.5 = 0.1 <= min_delta: no improvement
    assert best_point([], 1e-4) is None and not early_stop([], 1, 1e-4)


def test_pooled_invariants() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    dice = st.floats(0.0, 1.0)
    site = st.tuples(st.integers(1, 50), dice, dice, dice)

    @given(st.lists(site, min_size=1, max_size=6), st.randoms())
    def check(rows: list, rnd) -> None:  # noqa: ANN001
        scores = [SiteScore(f"s{i}", n, {"WT": a, "TC": b, "ET": c}) for i, (n, a, b, c) in enumerate(rows)]
        p = pooled(1, "x", scores, **WIDE)
        shuffled = list(scores)
        rnd.shuffle(shuffled)
        assert p == pooled(1, "x", shuffled, **WIDE)  # order does not matter
        for r in ("WT", "TC", "ET"):  # a weighted mean lies within the sites' range
            values = [s.dice[r] for s in scores]
            assert min(values) - 1e-12 <= p["dice"][r] <= max(values) + 1e-12
        same = [SiteScore(s.site, s.cases, dict(scores[0].dice)) for s in scores]
        assert pooled(1, "x", same, **WIDE)["dice"] == pytest.approx(scores[0].dice)  # identical sites pool to themselves

    check()
