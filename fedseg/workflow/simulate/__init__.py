"""Simulate a federation and its alternatives on one machine.

Reproduces the comparison of Sheller et al., "Federated learning in medicine: facilitating multi-institutional
collaborations without sharing patient data", Scientific Reports 10, 12598 (2020): federated learning (FL)
against centralized data sharing (CDS), institutional incremental learning (IIL), its cyclic variant (CIIL)
and sites training alone (:mod:`.modes`), each trained under an equal budget or until convergence
(:mod:`.protocol`), selected on validation and reported on the test split and on external sites
(:mod:`.report`), over one or several seeds with a paired per-case test (:mod:`.seeds`).
"""

from fedseg.workflow.simulate.modes import Mode
from fedseg.workflow.simulate.plot import plot_curves
from fedseg.workflow.simulate.protocol import Budget
from fedseg.workflow.simulate.report import SimulationResult
from fedseg.workflow.simulate.run import simulate
from fedseg.workflow.simulate.scoring import evaluate_weights

__all__ = ["Budget", "Mode", "SimulationResult", "evaluate_weights", "plot_curves", "simulate"]
