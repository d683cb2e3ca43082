"""BraTS evaluation metrics in pure NumPy/SciPy (no I/O).

Arrays are indexed [Z, Y, X] in fedseg; every ``spacing`` argument is in the array's axis order,
i.e. (sz, sy, sx). Label conventions and regions: :mod:`fedseg.labels` (re-exported here); empty-region conventions:
:mod:`fedseg.metrics.empty`; HD95 definition and the bounding-box crop: :mod:`fedseg.metrics.surface`.
"""

from __future__ import annotations

from fedseg.labels import REGIONS, LabelConvention, check_labels, label_to_regions, label_values
from fedseg.metrics.case import METRICS, case_metrics
from fedseg.metrics.empty import EmptyPolicy
from fedseg.metrics.overlap import Confusion, confusion, dice, sensitivity, specificity, volume_ml
from fedseg.metrics.report import CaseFailure, CaseResult, EvaluationResult, flat_row, json_safe
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
    "sensitivity",
    "specificity",
    "summarize",
    "surface_distances",
    "volume_ml",
]
