"""`fedseg simulate` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def simulate() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg simulate is under construction")
