"""When a simulated mode stops training, and which of its models is reported.

Two protocols (``--budget``):

* ``equal``     every mode trains exactly ``rounds`` rounds (the same optimizer steps per round and site);
* ``converged`` every mode trains until its validation score has not improved for ``patience`` evaluations,
                or ``rounds`` (``--max-rounds``) is reached.

The validation score of a point is the mean of its pooled Dice over WT, TC and ET; an evaluation improves
when it beats the best so far by more than :data:`MIN_DELTA` (ties do not reset the patience; the rule
is :mod:`fedseg.workflow.selection`, shared with a real federation's early stop). Whatever the
budget, the model *selected* for a mode is its best-validation round (the first one on ties), which is then
scored on the test split: selection on validation, report on test (Sheller et al. 2020).

IIL under ``converged`` visits the sites one after another, each until its own plateau (patience counted
within the visit) or ``floor(rounds / sites)`` rounds, so every site is visited within the maximum (which
must be at least the number of sites).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedseg.errors import ConfigError
from fedseg.workflow.selection import MIN_DELTA, best_round, plateaued, score

__all__ = ["DEFAULT_PATIENCE", "MIN_DELTA", "Budget", "StopRule", "best_round", "plateaued", "score"]

#: Evaluations without improvement that end a mode under ``converged`` when none is given. Measured on the
#: demo's non-IID sites (README, issue 14): FL's validation Dice stalls for 3 rounds and climbs again, so at
#: patience 3 it stopped after round 13 on average (best round 10, FL/CDS test WT 0.92); at patience 5 its
#: best round was 14.7 on average and FL/CDS WT 0.95.
DEFAULT_PATIENCE = 5


class Budget(str, enum.Enum):
    EQUAL = "equal"
    CONVERGED = "converged"


@dataclass(frozen=True)
class StopRule:
    """``rounds`` is the exact count under ``equal`` and the maximum under ``converged``."""

    budget: Budget
    rounds: int
    patience: int = DEFAULT_PATIENCE

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"--rounds/--max-rounds must be >= 1, got {self.rounds}")
        if self.patience < 1:  # under equal it still says whether a mode had plateaued by its last round
            raise ConfigError(f"--patience must be >= 1, got {self.patience}")

    def done(self, curve: Sequence[dict[str, Any]]) -> bool:
        """Return True when a mode with this curve (round 0 first) trains no further."""
        if len(curve) - 1 >= self.rounds:
            return True
        return self.budget is Budget.CONVERGED and plateaued(curve, self.patience)

    def visit_cap(self, n_sites: int) -> int:
        """Return the most rounds one IIL visit may take under ``converged``."""
        return max(1, self.rounds // n_sites)

    def next_visit(self, curve: Sequence[dict[str, Any]], n_sites: int) -> int | None:
        """Return the site IIL trains on next under ``converged``, or None when the last visit has ended."""
        visit = curve[-1].get("visit", 0) if len(curve) > 1 else 0
        rounds = [i for i, p in enumerate(curve) if i > 0 and p.get("visit") == visit]
        if not rounds:
            return visit
        points = [curve[rounds[0] - 1], *(curve[i] for i in rounds)]  # the model the visit received, then its own
        if len(rounds) >= self.visit_cap(n_sites) or plateaued(points, self.patience):
            return visit + 1 if visit + 1 < n_sites else None
        return visit
