"""Option definitions that several commands share, so each is spelled, checked and explained once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from fedseg.device import DEVICE_HELP, check_device_name
from fedseg.errors import DeviceError

if TYPE_CHECKING:
    from fedseg.privacy import PrivacyConfig

__all__ = ["DeltaOption", "DeviceOption", "MaxGradNormOption", "PrivacyOption", "TargetEpsilonOption",
           "privacy_config"]


def _check_device(value: str) -> str:
    """Refuse a misspelt ``--device`` before any work starts (whether CUDA exists is checked when it is used)."""
    try:
        return check_device_name(value)
    except DeviceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None


DeviceOption = Annotated[str, typer.Option("--device", help=DEVICE_HELP, callback=_check_device)]
"""``--device``: ``auto | cpu | cuda | cuda:N``; each command keeps its own default."""


PrivacyOption = Annotated[str | None, typer.Option(
    "--privacy", help="Differential privacy: off | dp-sgd (per patient, at the sites) | central (per site, "
    "DP-FedAvg at the coordinator; weighs sites uniformly).")]
"""``--privacy``: the plan's ``[privacy] mode``."""

TargetEpsilonOption = Annotated[float, typer.Option(
    "--target-epsilon", help="Privacy budget ε over all planned rounds (with --privacy).")]
DeltaOption = Annotated[float, typer.Option("--delta", help="Privacy δ (with --privacy).")]
MaxGradNormOption = Annotated[float, typer.Option(
    "--max-grad-norm", help="DP-SGD: per-case gradient clip (with --privacy dp-sgd).")]


def privacy_config(mode: str, target_epsilon: float, delta: float, max_grad_norm: float) -> PrivacyConfig:
    """Return the ``[privacy]`` table these options state (a misspelt mode is a one-line ``--privacy`` error)."""
    from fedseg.configtools import config_from_mapping
    from fedseg.privacy import PrivacyConfig, PrivacyMode

    if mode not in {m.value for m in PrivacyMode}:
        raise typer.BadParameter(f"{mode!r}: expected off, dp-sgd or central", param_hint="--privacy")
    return config_from_mapping(PrivacyConfig, {"mode": mode, "target_epsilon": target_epsilon, "delta": delta,
                                               "max_grad_norm": max_grad_norm}, "privacy")
