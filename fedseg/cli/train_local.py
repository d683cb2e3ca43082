"""`fedseg train-local` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def train_local() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg train-local is under construction")
