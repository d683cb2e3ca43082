"""`fedseg synth` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def synth() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg synth is under construction")
