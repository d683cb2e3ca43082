"""`fedseg predict` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def predict() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg predict is under construction")
