"""BraTS evaluation metrics in pure NumPy/SciPy (no I/O).

Arrays are indexed [Z, Y, X] in fedseg; every ``spacing`` argument is in the array's axis order,
i.e. (sz, sy, sx). Label conventions and regions: :mod:`fedseg.labels` (re-exported here); empty-region conventions:
:mod:`fedseg.metrics.empty`; HD95 definition and the bounding-box crop: :mod:`fedseg.metrics.surface`; BraTS 2023+
lesion-wise metrics: :mod:`fedseg.metrics.lesionwise`.
"""

from __future__ import annotations

from fedseg.labels import REGIONS, LabelConvention, check_labels, label_to_regions, label_values
from fedseg.metrics.case import METRICS, case_metrics
from fedseg.metrics.empty import EmptyPolicy
from fedseg.metrics.lesionwise import LesionDefinition, lesionwise_case, summarize_lesionwise
from fedseg.metrics.overlap import Confusion, confusion, dice, sensitivity, specificity, volume_ml
from fedseg.metrics.report import CaseFailure, CaseResult, EvaluationResult, flat_row, json_safe, lesion_columns
from fedseg.metrics.scoring import MetricSet, ScoringOptions, score_case
from fedseg.metrics.summary import STATISTICS, describe, summarize
from fedseg.metrics.surface import bounding_box, hd95, image_diagonal_mm, surface_distances

__all__ = [
    "METRICS",
    "REGIONS",
    "STATISTICS",
    "CaseFailure",
    "CaseResult",
    "Confusion",
    "EmptyPolicy",
    "EvaluationResult",
    "LabelConvention",
    "LesionDefinition",
    "MetricSet",
    "ScoringOptions",
    "bounding_box",
    "case_metrics",
    "check_labels",
    "confusion",
    "describe",
    "dice",
    "flat_row",
    "hd95",
    "image_diagonal_mm",
    "json_safe",
    "label_to_regions",
    "label_values",
    "lesion_columns",
    "lesionwise_case",
    "score_case",
    "sensitivity",
    "specificity",
    "summarize",
    "summarize_lesionwise",
    "surface_distances",
    "volume_ml",
]
