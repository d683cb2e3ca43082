"""Render the lesion-wise summary of an EvaluationResult: one rich table, a row per region.

Columns: the mean over cases of lesion-wise Dice and HD95 (``cases``: those with a defined value;
a case with lesions but no match has an infinite HD95 under the official ``brats`` definition, and
the mean is then ``inf``, as the official mean is), then the lesion counts summed over cases.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from fedseg.metrics.report import EvaluationResult

__all__ = ["render_lesionwise"]

_COUNT_LABELS = {"gt_lesions": "GT", "matched": "matched", "fp": "FP", "missed": "missed"}


def render_lesionwise(result: EvaluationResult, console: Console) -> None:
    """Print the lesion-wise table when the result carries lesion-wise metrics; else nothing."""
    summary = result.lesionwise_summary()
    if summary is None:
        return
    definition = result.settings.get("lesion_definition", "brats")
    table = Table(title=f"Lesion-wise ({definition}): means over cases, lesion counts summed", title_justify="left")
    table.add_column("region")
    for head in ("Dice", "HD95 (mm)", "cases"):
        table.add_column(head, justify="right")
    for head in _COUNT_LABELS.values():
        table.add_column(head, justify="right")
    for region, row in summary.items():
        dice, hd = row["dice"], row["hd95"]
        table.add_row(
            region,
            _fmt(dice["mean"]),
            _fmt(hd["mean"]),
            str(int(dice["n"])),
            *(str(row[key]) for key in _COUNT_LABELS),
        )
    console.print(table)


def _fmt(value: object) -> str:
    v = float(value)  # type: ignore[arg-type]
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf"
    return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
