"""Stop rules and selection on hand-made validation curves."""

from __future__ import annotations

import pytest

from fedseg.errors import ConfigError
from fedseg.workflow.simulate.protocol import Budget, StopRule, best_round, plateaued


def _curve(*scores: float, visits: tuple[int, ...] = ()) -> list[dict]:
    points = [{"dice": {"WT": s, "TC": s, "ET": s}} for s in scores]
    for p, v in zip(points[1:], visits):
        p["visit"] = v
    return points


def test_best_round_is_the_first_maximum_and_ties_do_not_count() -> None:
    assert best_round(_curve(0.1, 0.5, 0.3, 0.5)) == 1
    assert best_round(_curve(0.1, 0.5, 0.50001)) == 1  # within MIN_DELTA: no improvement
    assert best_round(_curve(0.2)) == 0


def test_plateau_counts_evaluations_since_the_best() -> None:
    assert not plateaued(_curve(0.1, 0.5), 1)
    assert plateaued(_curve(0.1, 0.5, 0.4), 1)
    assert not plateaued(_curve(0.1, 0.5, 0.4), 2)
    assert plateaued(_curve(0.1, 0.5, 0.4, 0.5), 2)


def test_equal_budget_ignores_plateaus_converged_stops_at_them() -> None:
    flat = _curve(0.5, 0.4, 0.3)
    assert not StopRule(Budget.EQUAL, 3, 1).done(flat)
    assert StopRule(Budget.EQUAL, 2, 1).done(flat)
    assert StopRule(Budget.CONVERGED, 10, 1).done(flat)
    assert not StopRule(Budget.CONVERGED, 10, 3).done(flat)
    assert StopRule(Budget.CONVERGED, 2, 3).done(flat)  # the maximum


def test_iil_moves_on_after_each_visits_plateau_or_cap() -> None:
    rule = StopRule(Budget.CONVERGED, 6, 1)  # 3 sites: at most 2 rounds per visit
    assert rule.next_visit(_curve(0.1), 3) == 0
    assert rule.next_visit(_curve(0.1, 0.3, visits=(0,)), 3) == 0
    assert rule.next_visit(_curve(0.1, 0.3, 0.2, visits=(0, 0)), 3) == 1  # plateau within the visit
    assert rule.next_visit(_curve(0.1, 0.3, 0.4, visits=(0, 0)), 3) == 1  # cap of 2 rounds
    # the visit is judged against the model it received, not against the best of earlier visits
    curve = _curve(0.1, 0.6, 0.4, 0.45, 0.5, visits=(0, 0, 1, 1))
    assert StopRule(Budget.CONVERGED, 9, 1).next_visit(curve, 3) == 1
    assert rule.next_visit(_curve(0.1, 0.3, 0.2, 0.4, 0.3, visits=(0, 0, 2, 2)), 3) is None


def test_iil_visits_every_site_within_a_maximum_that_is_no_multiple_of_the_sites() -> None:
    """A curve that never plateaus: each visit runs to its cap, and the last site still gets its visit."""
    for rounds, n in ((4, 3), (10, 6), (20, 6), (25, 6), (7, 7)):
        rule = StopRule(Budget.CONVERGED, rounds, 5)
        values, visits = [0.0], []
        while len(visits) < rounds and (visit := rule.next_visit(_curve(*values, visits=tuple(visits)), n)) is not None:
            visits.append(visit)
            values.append(values[-1] + 0.01)
        assert sorted(set(visits)) == list(range(n)), (rounds, n, visits)
        assert visits == sorted(visits)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="patience"):
        StopRule(Budget.CONVERGED, 3, 0)
    with pytest.raises(ConfigError, match="rounds"):
        StopRule(Budget.EQUAL, 0, 1)
    with pytest.raises(ConfigError, match="patience"):  # under equal it still marks a mode plateaued or not
        StopRule(Budget.EQUAL, 3, 0)
