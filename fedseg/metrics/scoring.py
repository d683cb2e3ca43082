"""Which metrics one evaluation computes (legacy, lesion-wise or both) and the one call that scores a case.

Every way of producing predictions (label maps on disk, a model run on a site dataset) scores a
case with :func:`score_case`, so ``--metrics`` and ``--lesion-definition`` mean the same everywhere.
Library default: legacy only (what validation during training and simulation need, and the fastest);
``fedseg evaluate`` defaults to both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from fedseg.labels import LabelConvention
from fedseg.metrics.case import case_metrics
from fedseg.metrics.empty import EmptyPolicy
from fedseg.metrics.lesionwise import LesionDefinition, lesionwise_case

__all__ = ["MetricSet", "ScoringOptions", "score_case"]


class MetricSet(str, Enum):
    """``--metrics``: the legacy (BraTS <= 2021) whole-region metrics, the lesion-wise ones, or both."""

    LEGACY = "legacy"
    LESION_WISE = "lesion-wise"
    BOTH = "both"


@dataclass(frozen=True)
class ScoringOptions:
    """What to compute per case; ``definition`` applies to the lesion-wise metrics."""

    metrics: MetricSet = MetricSet.LEGACY
    definition: LesionDefinition = LesionDefinition.BRATS

    @property
    def legacy(self) -> bool:
        return MetricSet(self.metrics) is not MetricSet.LESION_WISE

    @property
    def lesionwise(self) -> bool:
        return MetricSet(self.metrics) is not MetricSet.LEGACY

    def settings(self) -> dict[str, Any]:
        """Return the entries an EvaluationResult's ``settings`` records for these options."""
        out: dict[str, Any] = {"metrics": MetricSet(self.metrics).value}
        if self.lesionwise:
            out["lesion_definition"] = LesionDefinition(self.definition).value
        return out


def score_case(
    pred_label: np.ndarray,
    ref_label: np.ndarray,
    spacing: Sequence[float],
    *,
    convention: LabelConvention = LabelConvention.AUTO,
    ref_convention: LabelConvention | None = None,
    empty: EmptyPolicy = EmptyPolicy.BRATS,
    scoring: ScoringOptions | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]] | None]:
    """Return (legacy metrics or ``{}``, lesion-wise metrics or None) of one case, as ``scoring`` asks."""
    scoring = scoring or ScoringOptions()
    legacy = (case_metrics(pred_label, ref_label, spacing, convention=convention, ref_convention=ref_convention,
                           empty=empty) if scoring.legacy else {})
    lesion = (
        lesionwise_case(pred_label, ref_label, spacing, convention=convention, ref_convention=ref_convention,
                        definition=scoring.definition)
        if scoring.lesionwise
        else None
    )
    return legacy, lesion
