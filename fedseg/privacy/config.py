"""Privacy settings (the plan's ``[privacy]`` table) and the per-round budget they imply.

``mode``:

* ``off``: no differential privacy (the default; a plan without the table keeps its hash).
* ``dp-sgd``: patient-level DP-SGD at every site. Each step samples every training case independently
  with probability ``q = batch_size / cases`` (Poisson), draws one patch per sampled case, clips each
  case's gradient to ``max_grad_norm`` and adds Gaussian noise of std ``noise_multiplier * max_grad_norm``.
  The noise multiplier is derived (unless stated) so that ``rounds x steps_per_round`` steps at the
  site's enrolled case count reach exactly ``target_epsilon`` at ``delta``.
* ``central``: site-level DP-FedAvg at the coordinator (McMahan et al., ICLR 2018): each site's delta is
  clipped to ``central_clip_norm``, updates are weighted uniformly, and Gaussian noise of std
  ``central_noise_multiplier * central_clip_norm`` is added to their sum. Every site takes part in every
  round (sampling rate 1), so ``rounds`` compositions of the Gaussian mechanism reach ``target_epsilon``.

``noise_multiplier`` / ``central_noise_multiplier`` = 0 means "derive it from the budget".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from fedseg.configtools import require
from fedseg.errors import ConfigError
from fedseg.privacy.accountant import ACCOUNTANT, epsilon, noise_multiplier_for

__all__ = ["PrivacyConfig", "PrivacyMode", "Schedule", "central_schedule", "site_schedule"]


class PrivacyMode(str, enum.Enum):
    """Where differential privacy is applied, if anywhere."""

    OFF = "off"
    DP_SGD = "dp-sgd"
    CENTRAL = "central"


@dataclass(frozen=True)
class PrivacyConfig:
    """The plan's ``[privacy]`` table; see the module docstring."""

    mode: PrivacyMode = PrivacyMode.OFF
    target_epsilon: float = 8.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float = 0.0
    central_clip_norm: float = 1.0
    central_noise_multiplier: float = 0.0

    def __post_init__(self) -> None:
        where = "privacy"
        require(0.0 < self.target_epsilon <= 1000.0, where, f"target_epsilon must lie in (0, 1000], got {self.target_epsilon}")
        require(0.0 < self.delta < 0.1, where, f"delta must lie in (0, 0.1), got {self.delta}")
        require(self.max_grad_norm > 0.0, where, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        require(self.noise_multiplier >= 0.0, where, "noise_multiplier must be >= 0 (0 = derived from the budget)")
        require(self.central_clip_norm > 0.0, where, f"central_clip_norm must be > 0, got {self.central_clip_norm}")
        require(self.central_noise_multiplier >= 0.0, where,
                "central_noise_multiplier must be >= 0 (0 = derived from the budget)")


@dataclass(frozen=True)
class Schedule:
    """The mechanism one party runs every step and what it has spent after ``steps_done`` steps."""

    noise_multiplier: float
    clip: float
    sampling_rate: float
    steps_per_round: int
    delta: float
    target_epsilon: float

    def epsilon_after(self, rounds: int) -> float:
        """Return the ε spent after ``rounds`` rounds of this schedule."""
        return epsilon(self.sampling_rate, self.noise_multiplier, rounds * self.steps_per_round, self.delta)

    def record(self, mode: PrivacyMode, rounds: int) -> dict[str, Any]:
        """Return the manifest's ``privacy`` mapping after ``rounds`` rounds (all plain JSON values)."""
        return {"mode": mode.value, "epsilon": round(self.epsilon_after(rounds), 6), "delta": self.delta,
                "target_epsilon": self.target_epsilon, "noise_multiplier": self.noise_multiplier,
                "clip": self.clip, "sampling_rate": self.sampling_rate,
                "steps": rounds * self.steps_per_round, "accountant": ACCOUNTANT}

    def check_round(self, round_: int, who: str) -> None:
        """Refuse (ConfigError) a round ``round_`` whose ε would exceed the target (a small float slack)."""
        spent = self.epsilon_after(round_)
        if spent > self.target_epsilon * (1 + 1e-9):
            raise ConfigError(f"{who}: round {round_} would spend ε = {spent:.3f} at δ = {self.delta:g}, over the "
                              f"plan's privacy budget target_epsilon = {self.target_epsilon:g}; refusing to train it")


def site_schedule(config: PrivacyConfig, *, enrolled_cases: int | None, train_cases: int, batch_size: int,
                  steps_per_round: int, rounds: int, site: str) -> Schedule:
    """Return a site's DP-SGD schedule: noise derived from its *enrolled* cases, sampling from its actual ones.

    Everyone can recompute the noise multiplier from the plan alone. The sampling rate uses the site's
    real train split, so a site holding fewer cases than it enrolled spends more per step, and the
    budget check (:meth:`Schedule.check_round`) sees it.
    """
    if enrolled_cases is None:
        raise ConfigError(f"privacy: mode dp-sgd needs the enrolled case count of site {site!r} "
                          "(cases = N in its [[sites]] table) to derive its noise")
    q = min(1.0, batch_size / train_cases)
    sigma = config.noise_multiplier or noise_multiplier_for(
        config.target_epsilon, config.delta, min(1.0, batch_size / enrolled_cases), rounds * steps_per_round)
    return Schedule(noise_multiplier=sigma, clip=config.max_grad_norm, sampling_rate=q, steps_per_round=steps_per_round,
                    delta=config.delta, target_epsilon=config.target_epsilon)


def central_schedule(config: PrivacyConfig, *, rounds: int) -> Schedule:
    """Return the coordinator's DP-FedAvg schedule: one Gaussian mechanism per round, every site sampled."""
    sigma = config.central_noise_multiplier or noise_multiplier_for(config.target_epsilon, config.delta, 1.0, rounds)
    return Schedule(noise_multiplier=sigma, clip=config.central_clip_norm, sampling_rate=1.0, steps_per_round=1,
                    delta=config.delta, target_epsilon=config.target_epsilon)
