"""What the store commands share: the --store option's help, log lines on stderr, and opening the store."""

from __future__ import annotations

import logging
import sys
from typing import Any

STORE_HELP = "The round store: a folder, sftp://[user@]host[:port]/path or s3://bucket/prefix (no passwords in it)."


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Write to whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def log_to_stderr(verbose: bool = False) -> None:
    """Send fedseg's log records (waits, retries, rounds) to stderr as timestamped lines (installed once)."""
    logger = logging.getLogger("fedseg")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def open_cli_store(url: str) -> Any:
    """Open ``url`` (StoreError, a one-line CLI error, when it cannot be reached)."""
    from fedseg.workflow.store import open_store

    return open_store(url)
