"""What the demo leaves a user to run next: the paper's FL vs pooled comparison on the demo's own sites.

The demo's five minutes buy one federation, not the four trainings Sheller et al. (2020) compare; the
comparison's run time is estimated from the round time the demo has just measured on this machine, so
the figure printed is this machine's, not a guess made elsewhere.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedseg.workflow.simulate.protocol import DEFAULT_PATIENCE

__all__ = ["Comparison", "comparison", "measured_round_seconds", "MODES", "PATIENCE", "MAX_ROUNDS", "SEEDS"]

ROUND_SECONDS_FILE = "round-seconds.json"

#: The paper's comparison: federated (fl), pooled (cds), incremental (iil) and cyclic incremental (ciil).
MODES = ("fl", "cds", "iil", "ciil")
PATIENCE = DEFAULT_PATIENCE  # two campaigns (README): FL's validation Dice stalls for 3 rounds and climbs again
MAX_ROUNDS = 30
SEEDS = 3


@dataclass(frozen=True)
class Comparison:
    """The exact ``fedseg simulate`` command and its expected run time, in seconds, on this machine."""

    command: str
    seconds_low: float
    seconds_high: float

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "seconds_low": round(self.seconds_low), "seconds_high": round(self.seconds_high)}

    def describe(self) -> str:
        """Return one line: the expected run time as a range of minutes."""
        return (f"about {self.seconds_low / 60:.0f}-{self.seconds_high / 60:.0f} min on this machine "
                f"({len(MODES)} modes x {SEEDS} seeds; each mode stops {PATIENCE} rounds after its best "
                f"validation Dice, at most after {MAX_ROUNDS})")


def comparison(out: Path, plan_path: Path, site_ids: list[str], seconds_per_round: float,
               device: str = "cpu") -> Comparison:
    """Return the simulate command over the demo's site datasets with the demo's plan, and its run time.

    Every mode trains as many steps per round as one federated round (``local`` is left out), so a round of
    each costs about the demo's measured ``seconds_per_round``; a mode needs at least ``PATIENCE + 1`` rounds
    to stop (IIL that many at each site it visits in turn) and at most ``MAX_ROUNDS``. The command names the
    ``device`` the round was measured on.
    """
    args = ["fedseg", "simulate", *(str(out / site / "data") for site in site_ids), "--plan", str(plan_path),
            "--modes", ",".join(MODES), "--budget", "converged", "--patience", str(PATIENCE),
            "--max-rounds", str(MAX_ROUNDS), "--seeds", str(SEEDS), "--device", device, "--out", str(out / "simulation")]
    fewest_rounds = (PATIENCE + 1) * (len(MODES) - 1 + len(site_ids))  # iil: one plateau per site
    return Comparison(" ".join(shlex.quote(a) for a in args), seconds_per_round * SEEDS * fewest_rounds,
                      seconds_per_round * SEEDS * len(MODES) * MAX_ROUNDS)


def measured_round_seconds(fed: Path, fresh: list[float]) -> float | None:
    """Return the seconds of one federated round on this machine, kept in ``fed`` for reruns.

    ``fresh`` holds the rounds this run trained in full; a rerun that trained none reuses the figure an
    earlier run measured (a rerun's rounds take milliseconds: every update is already there). None when no
    run has measured one.
    """
    from fedseg.fsutil import atomic_write_json

    path = Path(fed) / ROUND_SECONDS_FILE
    if fresh:
        atomic_write_json(path, {"seconds_per_round": sum(fresh) / len(fresh), "rounds": len(fresh)})
    if not path.exists():
        return None
    return float(json.loads(path.read_text("utf-8"))["seconds_per_round"])
