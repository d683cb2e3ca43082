"""What the store commands share: the --store option's help, log lines on stderr, and opening the store."""

from __future__ import annotations

import logging
from typing import Any

STORE_HELP = "The round store: a folder, sftp://[user@]host[:port]/path or s3://bucket/prefix (no passwords in it)."


def log_to_stderr(verbose: bool = False) -> None:
    """Send fedseg's log records (waits, retries, rounds) to stderr as plain timestamped lines."""
    from rich.logging import RichHandler

    from fedseg.cli._console import stderr

    logger = logging.getLogger("fedseg")
    if not any(getattr(h, "_fedseg_store", False) for h in logger.handlers):
        handler: Any = RichHandler(console=stderr(), show_path=False, markup=False, rich_tracebacks=False)
        handler._fedseg_store = True
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def open_cli_store(url: str) -> Any:
    """Open ``url`` (StoreError, a one-line CLI error, when it cannot be reached)."""
    from fedseg.workflow.store import open_store

    return open_store(url)
