"""`fedseg aggregate` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def aggregate() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg aggregate is under construction")
