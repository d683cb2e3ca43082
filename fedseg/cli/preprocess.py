"""`fedseg preprocess` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def preprocess() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg preprocess is under construction")
