"""The result of an evaluation run: per-case metrics, failures, unpaired cases and the summary.

Pure data (no I/O) so that every way of producing predictions -- label maps on disk
(``fedseg evaluate --pred/--truth``) or a model run on a site dataset (``--plan/--model/--data``) --
fills the same type, and the CLI renders and writes it the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fedseg.labels import REGIONS
from fedseg.metrics.case import METRICS
from fedseg.metrics.lesionwise import COUNTS, LESION_METRICS, summarize_lesionwise
from fedseg.metrics.summary import summarize

__all__ = ["CaseFailure", "CaseResult", "EvaluationResult", "flat_row", "json_safe", "lesion_columns"]


@dataclass(frozen=True)
class CaseResult:
    """The metrics of one case (``metrics`` as returned by ``case_metrics``) and where they came from."""

    case_id: str
    metrics: dict[str, dict[str, float]]
    pred: str = ""  # prediction source (a file path, or a description)
    truth: str = ""  # reference source
    pred_convention: str = ""  # resolved label convention of each side ("brats2021" / "brats2023")
    truth_convention: str = ""
    lesionwise: dict[str, dict[str, float]] | None = None  # as lesionwise_case returns, when computed


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be scored, and why (the message names the file)."""

    case_id: str
    message: str


@dataclass
class EvaluationResult:
    """Everything one evaluation produced; ``ok`` is False when any case failed or was unpaired."""

    cases: list[CaseResult] = field(default_factory=list)
    failures: list[CaseFailure] = field(default_factory=list)
    unpaired: list[str] = field(default_factory=list)  # one message per unpaired file, naming it
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. labels, empty policy, sources

    @property
    def ok(self) -> bool:
        return not self.failures and not self.unpaired

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Return ``summarize`` over the scored cases."""
        return summarize(c.metrics for c in self.cases)

    def lesionwise_summary(self) -> dict[str, dict[str, object]] | None:
        """Return ``summarize_lesionwise`` over the cases that carry lesion-wise metrics, or None."""
        rows = [c.lesionwise for c in self.cases if c.lesionwise is not None]
        return summarize_lesionwise(rows) if rows else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN and infinity become null; lesion-wise keys only when computed)."""
        doc = self._legacy_dict()
        lesion_summary = self.lesionwise_summary()
        if lesion_summary is not None:
            for row, case in zip(doc["cases"], self.cases, strict=True):
                row["lesionwise"] = case.lesionwise
            doc["lesionwise_summary"] = lesion_summary
        return json_safe(doc)

    def _legacy_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "cases": [
                {
                    "case": c.case_id,
                    "pred": c.pred,
                    "truth": c.truth,
                    "pred_convention": c.pred_convention,
                    "truth_convention": c.truth_convention,
                    "metrics": c.metrics,
                }
                for c in self.cases
            ],
            "summary": self.summary(),
            "failures": [{"case": f.case_id, "message": f.message} for f in self.failures],
            "unpaired": list(self.unpaired),
        }


def flat_row(case: CaseResult) -> dict[str, Any]:
    """Return one CSV row: case, sources, then ``<REGION>_<metric>`` columns (NaN as empty)."""
    row: dict[str, Any] = {"case": case.case_id, "pred": case.pred, "truth": case.truth}
    for region in REGIONS:
        for metric in METRICS:
            value = case.metrics.get(region, {}).get(metric, math.nan)
            row[f"{region}_{metric}"] = "" if math.isnan(value) else repr(float(value))
        for key in lesion_columns() if case.lesionwise is not None else ():
            value = float(case.lesionwise.get(region, {}).get(key, math.nan))
            text = str(int(value)) if key in COUNTS else repr(value)
            row[f"{region}_lesionwise_{key}"] = "" if math.isnan(value) else text
    return row


def lesion_columns() -> tuple[str, ...]:
    """Return the per-region lesion-wise CSV column suffixes (``<REGION>_lesionwise_<key>``)."""
    return LESION_METRICS + COUNTS


def json_safe(obj: Any) -> Any:
    """Return ``obj`` with every float NaN/inf replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
