"""Central DP-FedAvg at the coordinator, and the privacy records of a round's global.

McMahan, Ramage, Talwar and Zhang, "Learning Differentially Private Recurrent Language Models" (ICLR
2018): every site's delta is clipped to L2 norm ``C = privacy.central_clip_norm``, the clipped deltas
are averaged with equal weights, and Gaussian noise of std ``z * C`` on their sum (``z * C / n`` on the
mean of ``n`` accepted updates, as Flower's server-side fixed clipping does) makes each round a Gaussian
mechanism with sensitivity ``C``: site-level DP, for adding or removing one site's contribution. Every
site takes part in every round (no sampling), so the accountant composes ``round`` Gaussian mechanisms.

The noise is drawn from a NumPy PCG64 generator seeded from ``os.urandom`` inside the coordinator's
process; the seed is never written anywhere. A consequence, by design: a rerun of a written round
cannot reproduce its global (and :mod:`fedseg.workflow.coordinator.round_write` refuses a second, different global
for a round), so the same sum is never released twice with fresh noise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fedseg.configs.aggregation import AggregationConfig
from fedseg.federation.plan import Plan
from fedseg.privacy import ACCOUNTANT, PrivacyMode, Schedule, central_schedule
from fedseg.workflow.coordinator.round_report import AggregateReport

__all__ = ["CentralNoise", "central_noise", "round_privacy", "update_epsilon"]


@dataclass(frozen=True)
class CentralNoise:
    """The coordinator's DP-FedAvg mechanism for a run: its schedule and the aggregation settings it imposes."""

    schedule: Schedule
    config: AggregationConfig

    def sampler(self, accepted: int) -> Callable[[tuple[int, ...]], np.ndarray]:
        """Return a function giving the noise of the mean of ``accepted`` updates for one tensor's shape."""
        rng = np.random.default_rng(np.random.SeedSequence(int.from_bytes(os.urandom(32), "little")))
        std = self.schedule.noise_multiplier * self.schedule.clip / max(accepted, 1)
        return lambda shape: rng.normal(0.0, std, size=shape)


def central_noise(plan: Plan, config: AggregationConfig) -> CentralNoise | None:
    """Return the central-DP mechanism under ``privacy.mode = "central"`` (None otherwise).

    The clip becomes ``privacy.central_clip_norm`` and the norm and direction outlier screens are turned
    off (see :mod:`fedseg.federation.screening` for why).
    """
    if plan.privacy.mode is not PrivacyMode.CENTRAL:
        return None
    schedule = central_schedule(plan.privacy, rounds=plan.rounds)
    return CentralNoise(schedule, replace(config, clip_norm=schedule.clip, outlier_z=0.0, direction_z=0.0))


def update_epsilon(manifest: Mapping[str, Any]) -> float | None:
    """Return the ε a (verified) update's privacy record states, or None."""
    record = manifest.get("privacy")
    eps = record.get("epsilon") if isinstance(record, Mapping) else None
    return float(eps) if isinstance(eps, (int, float)) and not isinstance(eps, bool) else None


def round_privacy(plan: Plan, report: AggregateReport, central: CentralNoise | None) -> dict[str, Any] | None:
    """Return the global manifest's ``privacy`` record: the central accounting, or each contributor's ε (dp-sgd)."""
    if central is not None:
        return central.schedule.record(PrivacyMode.CENTRAL, report.round)
    if plan.privacy.mode is PrivacyMode.DP_SGD:
        sites = {str(v.site): v.epsilon for v in sorted(report.accepted, key=lambda v: v.site or "")}
        return {"mode": PrivacyMode.DP_SGD.value, "delta": plan.privacy.delta,
                "target_epsilon": plan.privacy.target_epsilon, "site_epsilon": sites, "accountant": ACCOUNTANT}
    return None
