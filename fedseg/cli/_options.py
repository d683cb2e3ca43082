"""Option definitions that several commands share, so each is spelled, checked and explained once."""

from __future__ import annotations

from typing import Annotated

import typer

from fedseg.device import DEVICE_HELP, check_device_name
from fedseg.errors import DeviceError

__all__ = ["DeviceOption"]


def _check_device(value: str) -> str:
    """Refuse a misspelt ``--device`` before any work starts (whether CUDA exists is checked when it is used)."""
    try:
        return check_device_name(value)
    except DeviceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None


DeviceOption = Annotated[str, typer.Option("--device", help=DEVICE_HELP, callback=_check_device)]
"""``--device``: ``auto | cpu | cuda | cuda:N``; each command keeps its own default."""
