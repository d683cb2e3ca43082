"""`fedseg evaluate` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def evaluate() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg evaluate is under construction")
