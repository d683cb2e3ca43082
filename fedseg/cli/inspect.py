"""`fedseg inspect` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def inspect() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg inspect is under construction")
