"""What a site keeps of its optimizer between rounds (``training.keep_optimizer_state``).

After round r a site writes its optimizer's state (AdamW moments and step counts, or SGD momentum) to
``STATE.optimizer-rNNNN.h5`` beside its site state: HDF5 tensors and JSON scalars, written atomically, read
only by the site that wrote it (it never leaves the site, nothing from another site is read). Round r + 1
starts from it when its round attribute is r and it fits the plan (the model spec and the optimizer's kind);
anything else starts the optimizer afresh with a warning. Round r - 1's file stays until round r is
complete, so an interrupted or retrained round starts from the same moments again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from fedseg.configs.training import OptimizerName
from fedseg.configtools import config_to_dict
from fedseg.errors import TrainingError
from fedseg.federation.plan import Plan

__all__ = ["kept_optimizer", "optimizer_fit", "optimizer_path", "prune_kept"]

log = logging.getLogger(__name__)


def optimizer_path(state_file: Path, round_: int) -> Path:
    """Return where a site keeps its optimizer state after round ``round_`` (training.keep_optimizer_state)."""
    return state_file.with_name(f"{state_file.name}.optimizer-r{round_:04d}.h5")


def prune_kept(state_file: Path, round_: int) -> None:
    """Delete the optimizer states and control variates kept after rounds before ``round_`` once it is complete.

    Until then round ``round_ - 1``'s files stay: an interrupted or retrained round starts from them again.
    """
    for kind in ("optimizer", "drift"):
        prefix = f"{state_file.name}.{kind}-r"
        for old in state_file.parent.glob(f"{prefix}*.h5"):
            tail = old.name[len(prefix):-len(".h5")]
            if tail.isdigit() and int(tail) < round_:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()


def optimizer_fit(plan: Plan) -> str:
    """Return a digest of what a kept optimizer state must fit: the model spec and the optimizer's kind."""
    training = plan.training
    fits = {"model": config_to_dict(plan.model), "optimizer": OptimizerName(training.optimizer).value,
            "momentum": training.momentum > 0}
    return hashlib.sha256(json.dumps(fits, sort_keys=True).encode()).hexdigest()


def kept_optimizer(path: Path, round_: int, plan: Plan, groups: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the optimizer state this site kept from round ``round_ - 1``, or None (say why) to start afresh."""
    from fedseg.train import checkpoint as ckpt

    if not path.exists():
        if round_ > 1:
            log.info("%s: no optimizer state kept from round %d; the optimizer starts afresh", path, round_ - 1)
        return None
    try:
        state, attrs = ckpt.read_optimizer(path, groups)
    except (TrainingError, ValueError, KeyError) as exc:
        log.warning("%s: cannot read the kept optimizer state (%s); the optimizer starts afresh", path, exc)
        return None
    if attrs.get("round") != str(round_ - 1) or attrs.get("fits_sha256") != optimizer_fit(plan):
        log.warning("%s: the kept optimizer state is of round %s or of another model or optimizer, not of round "
                    "%d of this plan; the optimizer starts afresh", path, attrs.get("round"), round_ - 1)
        return None
    return state
