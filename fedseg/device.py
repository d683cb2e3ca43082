"""Resolve the ``--device`` value every command takes into a torch device, in one place.

Accepted values, exactly: ``auto`` (the first CUDA device when torch sees one, else the CPU), ``cpu``,
``cuda`` (the current CUDA device) and ``cuda:N`` (N a non-negative integer below the number of CUDA
devices). Anything else, or CUDA asked for where torch sees none, raises :class:`~fedseg.errors.DeviceError`
with one message: what was asked, what this machine has, and the fix.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fedseg.errors import DeviceError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_CHOICES", "DEVICE_HELP", "check_device_name", "resolve_device"]

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N"
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N."

_CUDA = re.compile(r"cuda(?::(\d+))?")


def _available() -> tuple[str, int]:
    """Return a description of the devices torch sees here, and the number of CUDA devices."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return "only the CPU (torch sees no CUDA device)", 0
    names = ", ".join(f"cuda:{i}" for i in range(count))
    return f"cpu and {count} CUDA device(s): {names}", count


def _error(name: str, why: str, fix: str) -> DeviceError:
    available, _ = _available()
    return DeviceError(f"--device {name!r}: {why}; available here: {available}; {fix}")


def check_device_name(name: str) -> str:
    """Return ``name`` if it is spelled as one of ``auto | cpu | cuda | cuda:N``, else raise DeviceError.

    Spelling only: whether CUDA exists is decided by :func:`resolve_device`, when the device is needed.
    """
    if name in ("auto", "cpu") or _CUDA.fullmatch(name):
        return name
    raise _error(name, f"expected one of {DEVICE_CHOICES}", "use --device auto or --device cpu")


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``auto | cpu | cuda | cuda:N``; DeviceError for anything else or absent CUDA."""
    import torch

    check_device_name(name)
    if name == "cpu":
        return torch.device("cpu")
    _, count = _available()
    if name == "auto":
        return torch.device("cuda" if count else "cpu")
    match = _CUDA.fullmatch(name)
    assert match is not None  # checked above
    if count == 0:
        raise _error(name, "CUDA was asked for but is not available", "use --device cpu (or auto)")
    index = match.group(1)
    if index is None:
        return torch.device("cuda")
    if int(index) >= count:
        raise _error(name, f"there is no CUDA device {int(index)}",
                     f"use --device cuda:0 … cuda:{count - 1}, cuda or auto")
    return torch.device("cuda", int(index))
