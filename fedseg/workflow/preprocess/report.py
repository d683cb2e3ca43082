"""What ``fedseg preprocess`` did: one :class:`CaseOutcome` per case and the :class:`BuildReport` (``--json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedseg.data.dataset import CaseRecord

__all__ = ["QC_DIR", "BuildReport", "CaseOutcome"]

QC_DIR = "qc"


@dataclass
class CaseOutcome:
    """What happened to one case: ``status`` is ``done``, ``skipped`` or ``failed`` (with ``reason``)."""

    case_id: str
    status: str
    reason: str = ""
    record: CaseRecord | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class BuildReport:
    """The result of :func:`build_dataset`."""

    input: Path
    out: Path
    layout: str
    config_sha256: str
    jobs: int
    seconds: float
    outcomes: list[CaseOutcome]
    labels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def flagged(self) -> list[CaseOutcome]:
        """Return the written cases the QC gate flagged and no one accepted (not used until accepted)."""
        return [o for o in self.outcomes if o.record is not None and not o.record.usable]

    def qc_png(self, case_id: str) -> Path:
        return self.out / QC_DIR / f"{case_id}.png"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (QC figures included, no image data)."""
        return {
            "input": str(self.input), "out": str(self.out), "layout": self.layout,
            "config_sha256": self.config_sha256, "jobs": self.jobs, "seconds": round(self.seconds, 3),
            "cases": [{"id": o.case_id, "status": o.status, "reason": o.reason, "seconds": round(o.seconds, 3),
                       "timings": {k: round(v, 3) for k, v in o.timings.items()},
                       **({"split": o.record.split, "qc": o.record.qc, "warnings": o.record.warnings,
                           "qc_status": o.record.status, "flags": o.record.flags, "accepted": o.record.accepted,
                           "qc_png": str(self.qc_png(o.case_id))}
                          if o.record else {})} for o in self.outcomes],
            "failed": len(self.failed), "labels": self.labels,
            "flagged": [{"id": o.case_id, "qc_png": str(self.qc_png(o.case_id)), "flags": o.record.flags}
                        for o in self.flagged if o.record is not None],
            "flagged_count": len(self.flagged),
        }
