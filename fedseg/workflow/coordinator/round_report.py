"""What a coordinator's round decided: one :class:`UpdateVerdict` per update file and the :class:`AggregateReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedseg.errors import AggregationError
from fedseg.federation.manifest import WeightsKind
from fedseg.federation.screening import Reason

if TYPE_CHECKING:  # pragma: no cover
    from fedseg.workflow.coordinator.scratch import TensorFile

__all__ = ["AggregateReport", "QuorumError", "UpdateVerdict"]


@dataclass
class UpdateVerdict:
    """What screening decided about one update file."""

    path: Path
    site: str | None = None
    claimed_site: str | None = None
    sha256: str | None = None
    num_examples: int | None = None
    norm: float | None = None
    cosine: float | None = None
    weight: float | None = None
    epsilon: float | None = None  # the ε the site's signed update says it has spent (dp-sgd)
    reason: Reason | None = None
    created_at: datetime | None = field(default=None, repr=False)
    weights: str = WeightsKind.FULL.value
    scratch: TensorFile | None = field(default=None, repr=False)
    val_score: Any = field(default=None, repr=False)  # its signed score of the current global (fed_validation)
    added: bool = field(default=False, repr=False)

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "site": self.site, "claimed_site": self.claimed_site, "sha256": self.sha256,
                "num_examples": self.num_examples, "norm": self.norm, "cosine": self.cosine,
                "weight": self.weight, "epsilon": self.epsilon, "accepted": self.accepted,
                "rule": self.reason.rule if self.reason else None, "reason": self.reason.detail if self.reason else None}


@dataclass
class AggregateReport:
    """The outcome of a round: per-update verdicts and what was written."""

    round: int
    strategy: str
    params: dict[str, Any]
    min_sites: int
    verdicts: list[UpdateVerdict]
    status: str = "screened"  # screened | dry-run | written | already-aggregated | below-quorum
    out: Path | None = None
    digest: str | None = None
    ledger: Path | None = None
    server_state: Path | None = None
    created_at: str | None = None
    expires_at: str | None = None
    parent: str | None = None
    weighting: str = "examples"
    notes: list[str] = field(default_factory=list)
    privacy: dict[str, Any] | None = None  # what the global's manifest records (None outside privacy modes)
    validation: dict[str, Any] | None = None  # the federated validation of the current global (fed_validation)
    curve: list[dict[str, Any]] = field(default_factory=list)  # every global's federated validation so far
    best: dict[str, Any] | None = None  # the best point of ``curve``

    @property
    def accepted(self) -> list[UpdateVerdict]:
        return [v for v in self.verdicts if v.accepted]

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "strategy": {"name": self.strategy, "params": self.params},
                "min_sites": self.min_sites, "status": self.status, "accepted": len(self.accepted),
                "rejected": len(self.verdicts) - len(self.accepted), "updates": [v.to_dict() for v in self.verdicts],
                "out": str(self.out) if self.out else None, "sha256": self.digest,
                "ledger": str(self.ledger) if self.ledger else None,
                "server_state": str(self.server_state) if self.server_state else None,
                "created_at": self.created_at, "expires_at": self.expires_at, "parent_sha256": self.parent,
                "weighting": self.weighting, "notes": list(self.notes), "privacy": self.privacy,
                "validation": self.validation, "curve": self.curve, "best": self.best}


class QuorumError(AggregationError):
    """Fewer than ``min_sites`` updates survived screening; nothing was written. ``report`` says why."""

    def __init__(self, message: str, report: AggregateReport) -> None:
        super().__init__(message)
        self.report = report
