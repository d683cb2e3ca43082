"""`fedseg demo` (being built; see its issue)."""

from __future__ import annotations

from fedseg.errors import FedsegError


def demo() -> None:
    """(Under construction.)"""
    raise FedsegError("fedseg demo is under construction")
