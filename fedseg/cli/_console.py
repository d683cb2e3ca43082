"""Consoles and small rendering helpers shared by the command modules (results to stdout, the rest to stderr)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["case_progress", "error_line", "print_json", "stderr", "stdout", "warn"]


def stdout() -> Console:
    """Return a console on the current stdout (created per call so CliRunner's capture is honoured)."""
    return Console(file=sys.stdout, soft_wrap=True)


def stderr() -> Console:
    """Return a console on the current stderr for progress and diagnostics."""
    return Console(file=sys.stderr, soft_wrap=True)


def error_line(message: str) -> None:
    """Print one red line on stderr."""
    stderr().print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def warn(message: str) -> None:
    """Print one yellow warning line on stderr."""
    stderr().print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout, without rich markup."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def case_progress(title: str, *, transient: bool = True, eta: bool = False, console: Console | None = None) -> Progress:
    """Return the per-case progress bar the commands share: title, bar, done/total, elapsed (and ETA), on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn(title), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    if eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=console or stderr(), transient=transient)
