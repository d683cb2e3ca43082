"""What a simulation reports: each mode's selected model under both protocols, scored on test and external sites.

* ``equal``     every mode's model after the same number of rounds: the last round all modes reached;
* ``converged`` every mode's best-validation round (with ``--budget equal``: the best round within the equal
                budget; ``plateaued`` says whether the mode's validation had stopped improving by then).

Each entry names the round, the optimizer steps spent to reach it (``rounds × sites × steps``; ``local``: per
site model, ``rounds × steps``), the validation Dice, the test Dice (None when no site has a test split) and
the Dice on each external site. ``fl_over_cds`` is FL's test Dice over CDS's per region (None where CDS is 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.labels import REGIONS
from fedseg.workflow.simulate.protocol import best_round, plateaued

__all__ = ["PROTOCOLS", "SimulationResult", "protocol_rounds", "ratio"]

PROTOCOLS = ("equal", "converged")


def protocol_rounds(curves: dict[str, list[dict[str, Any]]], patience: int) -> dict[str, dict[str, dict]]:
    """Return, per protocol and mode, the round reported and whether the mode had plateaued by its end."""
    common = min(len(c) - 1 for c in curves.values())
    out: dict[str, dict[str, dict]] = {p: {} for p in PROTOCOLS}
    for mode, curve in curves.items():
        out["equal"][mode] = {"round": common}
        out["converged"][mode] = {"round": best_round(curve), "trained_rounds": len(curve) - 1,
                                  "plateaued": plateaued(curve, patience)}
    return out


def ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> dict[str, float | None] | None:
    """Return ``a / b`` per region (None where ``b`` is 0), or None when either is missing."""
    if a is None or b is None:
        return None
    return {r: (a[r] / b[r] if b[r] > 0 else None) for r in REGIONS}


@dataclass
class SimulationResult:
    """Validation curves per mode (round 0 = the shared initial model) and the two protocols' reports."""

    config: dict[str, Any]
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    json_path: Path | None = None
    plot_path: Path | None = None

    def report(self, scorer: Callable[[str, int], dict[str, Any]], steps_of: Callable[[str, int], int]) -> None:
        """Fill :attr:`protocols`; ``scorer(mode, round)`` returns {"test": ..., "external": {...}}."""
        patience = self.config.get("patience", 1)
        for protocol, modes in protocol_rounds(self.curves, patience).items():
            entry: dict[str, Any] = {"modes": {}}
            for mode, where in modes.items():
                r = where["round"]
                scored = scorer(mode, r)
                entry["modes"][mode] = dict(where, steps=steps_of(mode, r), val=dict(self.curves[mode][r]["dice"]),
                                            test=scored["test"], external=scored["external"])
            if "fl" in entry["modes"] and "cds" in entry["modes"]:
                fl, cds = entry["modes"]["fl"], entry["modes"]["cds"]
                entry["fl_over_cds"] = ratio(_dice(fl["test"]), _dice(cds["test"]))
                entry["fl_over_cds_external"] = {s: ratio(_dice(fl["external"][s]), _dice(cds["external"][s]))
                                                 for s in fl["external"]}
            self.protocols[protocol] = entry

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "curves": self.curves, "protocols": self.protocols}


def _dice(scored: dict[str, Any] | None) -> dict[str, float] | None:
    return None if scored is None else scored["dice"]
