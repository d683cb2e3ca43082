"""`fedseg export` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def export() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg export is under construction")
