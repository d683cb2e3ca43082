"""What a plan's ``[privacy]`` table means in numbers: each party's noise multiplier, sampling rate and steps.

Anyone holding the plan can recompute these (they depend on the plan alone): the site's noise is derived
from its *enrolled* case count, so the figures here assume each site trains on exactly that many cases.
"""

from __future__ import annotations

from typing import Any

from fedseg.federation.plan import Plan
from fedseg.privacy import PrivacyMode, Schedule, central_schedule, site_schedule

__all__ = ["planned_privacy"]


def _numbers(schedule: Schedule, rounds: int) -> dict[str, Any]:
    return {"noise_multiplier": schedule.noise_multiplier, "clip": schedule.clip,
            "sampling_rate": schedule.sampling_rate, "steps": rounds * schedule.steps_per_round,
            "epsilon": schedule.epsilon_after(rounds)}


def planned_privacy(plan: Plan) -> dict[str, Any] | None:
    """Return the planned mechanism per party (None with privacy off); the CLI prints it."""
    config = plan.privacy
    if config.mode is PrivacyMode.OFF:
        return None
    out: dict[str, Any] = {"mode": config.mode.value, "target_epsilon": config.target_epsilon, "delta": config.delta,
                           "rounds": plan.rounds}
    if config.mode is PrivacyMode.CENTRAL:
        out["coordinator"] = _numbers(central_schedule(config, rounds=plan.rounds), plan.rounds)
        return out
    out["sites"] = {}
    for site in plan.sites:
        assert site.cases is not None  # the plan refuses dp-sgd without enrolled counts
        schedule = site_schedule(config, enrolled_cases=site.cases, train_cases=site.cases,
                                 batch_size=plan.training.batch_size, steps_per_round=plan.training.steps_per_round,
                                 rounds=plan.rounds, site=site.id)
        out["sites"][site.id] = _numbers(schedule, plan.rounds)
    return out
