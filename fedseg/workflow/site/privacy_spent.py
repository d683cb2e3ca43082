"""A site's privacy spending under DP-SGD: every training run it started, kept beside the site state.

The file (``<state file stem>.privacy.json`` next to the site state, so with the site's data by default)
is a JSON list of ``{"round", "parent_sha256", "sampling_rate", "noise_multiplier", "steps"}``, one entry
per training run *started*, written atomically before the first step: a run that crashes still counts,
a resumed run (same checkpoint) does not count again, and training a round a second time from scratch
(the site state accepts the same global again) counts twice, as it releases a second noisy model. The
site's ε is the RDP composition of all entries (:func:`fedseg.privacy.composed_epsilon`), so a changing
train split or a retrained round is accounted as it really ran.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedseg.errors import ConfigError, StateError
from fedseg.fsutil import atomic_write_json
from fedseg.privacy import PrivacyMode, Schedule, composed_epsilon

__all__ = ["privacy_file", "spend"]

_KEYS = {"round", "parent_sha256", "sampling_rate", "noise_multiplier", "steps"}


def privacy_file(state_file: Path) -> Path:
    """Return the spending file that belongs to the site state ``state_file``."""
    return state_file.with_name(state_file.stem + ".privacy.json")


def _entries(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StateError(f"{path}: the privacy spending record cannot be read ({exc}); refusing to guess") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and set(e) == _KEYS for e in data):
        raise StateError(f"{path}: expected a JSON list of {{{', '.join(sorted(_KEYS))}}} objects")
    return data


def spend(path: Path, schedule: Schedule, *, round_: int, parent_sha256: str, site: str) -> dict[str, Any]:
    """Record one more training run of ``schedule`` and return the update's privacy record.

    Raises ConfigError, recording nothing, when the runs so far plus this one would pass the budget.
    """
    entries = _entries(path)
    entry = {"round": round_, "parent_sha256": parent_sha256, "sampling_rate": schedule.sampling_rate,
             "noise_multiplier": schedule.noise_multiplier, "steps": schedule.steps_per_round}
    runs = [*entries, entry]
    spent = composed_epsilon([(e["sampling_rate"], e["noise_multiplier"], e["steps"]) for e in runs], schedule.delta)
    if spent > schedule.target_epsilon * (1 + 1e-9):
        raise ConfigError(f"site {site}: training round {round_} would bring ε to {spent:.3f} at δ = "
                          f"{schedule.delta:g} ({len(entries)} run(s) recorded in {path}), over the plan's privacy "
                          f"budget target_epsilon = {schedule.target_epsilon:g}; refusing to train it")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, runs)
    return dict(schedule.record(PrivacyMode.DP_SGD, 1), epsilon=round(spent, 6),
                steps=sum(e["steps"] for e in runs), runs=len(runs))
