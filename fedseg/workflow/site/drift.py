"""SCAFFOLD's drift correction at a site (``training.drift_correction = "scaffold"``), from what the site has.

SCAFFOLD (Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", ICML 2020)
corrects every local step of site i by ``c - c_i``: ``c`` the federation's control variate (its mean update
direction), ``c_i`` the site's own. The paper's option II sets, after a round of K steps of size η from the
global x to the site's model y_i::

    c_i+ = c_i - c + (x - y_i) / (K η)        and at the server   c+ = c + mean_i (c_i+ - c_i)

With every site in every round, the plan's weights and a server step of 1 (FedAvg), ``c+ = (x - x+) / (K η)``:
the global's own move. A site therefore derives ``c`` from the two globals it received and needs nothing
else from the coordinator: no field is added to any signed file and nothing more leaves the site. Where a
site misses a round, a server optimizer moves the global, or screening clips or drops an update, ``c`` is
still the federation's actual last direction, no longer exactly the paper's variate.

fedseg's sites step with AdamW, whose step is not η times the gradient, so the correction is applied in the
units it is measured in: after each optimizer step of learning rate η_k the weights move by
``-η_k (c - c_i)``, and K η becomes Σ_k η_k. With plain SGD this is option II as the paper writes it.

After round u a site keeps ``STATE.drift-rNNNN.h5`` beside its site state: ``c_i`` after round u, the global
of round u - 1 it trained from, and round u's Σ η_k (HDF5 tensors, written atomically, read only by the site
that wrote it). Round u + 1 derives ``c`` from that global and the one it receives. A missing, unreadable or
unfitting file (another round, another model) trains the round uncorrected, with a warning, and the round
after is corrected again, but ``c`` then no longer equals the mean ``c_i`` and that offset persists (as it
does after a dropped update, a server optimizer or central noise): use it with plain FedAvg and every site in
every round. A plan combining it with a server optimizer, a median or trimmed mean, clipped updates or
central noise is refused (:func:`fedseg.configs.aggregation.check_drift_aggregation`), and so is a
``--steps``/``--epochs`` override of ``steps_per_round``. Round u - 1's file stays until round u is
complete, so an interrupted round applies the same correction again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedseg.configs.training import TrainingConfig
from fedseg.configtools import config_to_dict
from fedseg.errors import TrainingError
from fedseg.federation.plan import Plan

__all__ = ["Drift", "drift_fit", "drift_path", "federation_control", "keep_drift", "kept_drift", "lr_sum",
           "site_control"]

log = logging.getLogger(__name__)

_CONTROL, _GLOBAL = "control", "global"


@dataclass(frozen=True)
class Drift:
    """A round's control variates: the federation's ``c`` and the site's ``c_i``, by parameter name."""

    federation: dict[str, np.ndarray]
    site: dict[str, np.ndarray]

    def correction(self) -> dict[str, np.ndarray]:
        """Return ``c - c_i``: what every local step adds, times its learning rate, against the site's drift."""
        return {name: self.federation[name] - self.site[name] for name in self.site}


def federation_control(previous: np.ndarray, received: np.ndarray, total: float) -> np.ndarray:
    """Return ``c = (x_prev - x) / Σ η_k``: the federation's last move per unit of learning rate."""
    return ((np.asarray(previous, np.float32) - np.asarray(received, np.float32)) / np.float32(total)).astype(np.float32)


def site_control(start: np.ndarray, trained: np.ndarray, total: float,
                 used: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Return option II's ``c_i+ = c_i - c + (x - y_i) / Σ η_k``; ``used`` = (c, c_i), None for an uncorrected round."""
    control = federation_control(start, trained, total)
    if used is not None:
        control = control + used[1] - used[0]
    return control.astype(np.float32)


def drift_path(state_file: Path, round_: int) -> Path:
    """Return where a site keeps its control variate after round ``round_`` (training.drift_correction)."""
    return state_file.with_name(f"{state_file.name}.drift-r{round_:04d}.h5")


def drift_fit(plan: Plan) -> str:
    """Return a digest of what a kept control variate must fit: the model spec and the correction's kind."""
    fits = {"model": config_to_dict(plan.model), "drift_correction": plan.training.drift_correction.value}
    return hashlib.sha256(json.dumps(fits, sort_keys=True).encode()).hexdigest()


def lr_sum(config: TrainingConfig, total: int, window: tuple[float, float]) -> float:
    """Return Σ η_k over a round's ``total`` steps: the K η of option II when the rate varies along the curve."""
    from fedseg.train.loop import lr_at

    return float(sum(lr_at(k, total, config.learning_rate, config.lr_schedule, window) for k in range(total)))


def kept_drift(path: Path, round_: int, plan: Plan, received: Mapping[str, np.ndarray],
               names: Sequence[str]) -> Drift | None:
    """Return round ``round_``'s control variates from the file of round ``round_ - 1`` and the received global.

    ``received`` is the global this round trains from, ``names`` the model's parameter names. None (with
    the reason logged) trains the round uncorrected.
    """
    from fedseg.train import checkpoint as ckpt

    if not path.exists():
        if round_ > 1:
            log.warning("%s: no control variate kept from round %d; round %d trains without drift correction",
                        path, round_ - 1, round_)
        return None
    try:
        tensors, attrs = ckpt.read_tensors(path)
        total = float(attrs.get("lr_sum", "nan"))
    except (TrainingError, ValueError) as exc:
        log.warning("%s: cannot read the kept control variate (%s); round %d trains without drift correction",
                    path, exc, round_)
        return None
    if attrs.get("round") != str(round_ - 1) or attrs.get("fits_sha256") != drift_fit(plan):
        log.warning("%s: the kept control variate is of round %s or of another model, not of round %d of this "
                    "plan; round %d trains without drift correction", path, attrs.get("round"), round_ - 1, round_)
        return None
    wanted = {f"{kind}/{name}" for kind in (_CONTROL, _GLOBAL) for name in names}
    shapes_fit = wanted <= tensors.keys() and all(
        tensors[f"{k}/{n}"].shape == np.shape(received[n]) for k in (_CONTROL, _GLOBAL) for n in names)
    if not shapes_fit or not np.isfinite(total) or total <= 0:
        log.warning("%s: the kept control variate does not fit this model's parameters; round %d trains without "
                    "drift correction", path, round_)
        return None
    federation = {n: federation_control(tensors[f"{_GLOBAL}/{n}"], received[n], total) for n in names}
    site = {n: tensors[f"{_CONTROL}/{n}"] for n in names}
    if not all(np.isfinite(a).all() for a in (*federation.values(), *site.values())):
        log.warning("%s: the control variate is not finite; round %d trains without drift correction", path, round_)
        return None
    return Drift(federation=federation, site=site)


def keep_drift(path: Path, round_: int, plan: Plan, *, start: Mapping[str, np.ndarray],
               trained: Mapping[str, np.ndarray], total: float, used: Drift | None) -> None:
    """Write the site's control variate after round ``round_``: ``c_i+ = c_i - c + (x - y_i) / Σ η_k``.

    ``start`` is the global x the round trained from, ``trained`` the site's model y_i, ``total`` Σ η_k and
    ``used`` the variates the round was corrected with (None: uncorrected, ``c = c_i = 0``).
    """
    from fedseg.train import checkpoint as ckpt

    tensors: dict[str, np.ndarray] = {}
    for name in trained:
        pair = (used.federation[name], used.site[name]) if used is not None else None
        tensors[f"{_CONTROL}/{name}"] = site_control(start[name], trained[name], total, pair)
        tensors[f"{_GLOBAL}/{name}"] = np.asarray(start[name], np.float32)
    ckpt.write_tensors(path, tensors, attrs={"round": str(round_), "fits_sha256": drift_fit(plan),
                                             "lr_sum": repr(total)})
