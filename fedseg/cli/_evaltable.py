"""Render an EvaluationResult: one rich table per region (statistics of each metric over cases).

Shared by every path of ``fedseg evaluate`` (label maps on disk, or a model run on a site dataset).
Imports only rich at module level; the result type is duck-typed to keep ``fedseg --help`` fast.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fedseg.cli._lesiontable import render_lesionwise

if TYPE_CHECKING:
    from fedseg.metrics.report import EvaluationResult

__all__ = ["render_evaluation", "render_problems"]

_METRIC_LABELS = {
    "dice": "Dice",
    "hd95": "HD95 (mm)",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "pred_ml": "Pred volume (ml)",
    "ref_ml": "Ref volume (ml)",
}
_STATS = ("mean", "median", "std", "q25", "q75", "n")
_STAT_LABELS = {"mean": "mean", "median": "median", "std": "std", "q25": "25th pct", "q75": "75th pct", "n": "n"}


def render_evaluation(result: EvaluationResult, console: Console) -> None:
    """Print one table per region (WT, TC, ET): rows are metrics, columns their statistics over cases."""
    summary = result.summary()
    settings = result.settings
    console.print(
        f"{len(result.cases)} case(s) scored"
        + (f", labels {settings['labels']}" if "labels" in settings else "")
        + (f", empty regions: {settings['empty']}" if "empty" in settings else ""),
        highlight=False,
    )
    for region, metrics in summary.items():
        if settings.get("metrics") == "lesion-wise":
            break  # legacy metrics were not computed
        table = Table(title=f"{region}", title_justify="left")
        table.add_column("metric")
        for stat in _STATS:
            table.add_column(_STAT_LABELS[stat], justify="right")
        for metric, stats in metrics.items():
            table.add_row(_METRIC_LABELS.get(metric, metric), *(_fmt(stat, stats[stat]) for stat in _STATS))
        console.print(table)
    render_lesionwise(result, console)


def render_problems(result: EvaluationResult, console: Console) -> None:
    """Print failed and unpaired cases, one line each, on ``console`` (stderr)."""
    for failure in result.failures:
        console.print(f"[bold red]failed:[/] {escape(failure.case_id)}: {escape(failure.message)}", highlight=False)
    for message in result.unpaired:
        console.print(f"[yellow]unpaired:[/] {escape(message)}", highlight=False)


def _fmt(stat: str, value: float) -> str:
    if stat == "n":
        return str(int(value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
