"""Shared options: every command's --device is the one definition (same help, same spelling check)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.device import DEVICE_HELP

runner = CliRunner()


def test_every_device_option_is_the_shared_one() -> None:
    group = typer.main.get_command(app)
    found = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if "--device" in getattr(param, "opts", ()):
                found[name] = param
    assert set(found) == {"train-local", "predict", "evaluate", "simulate", "demo"}
    assert {p.help for p in found.values()} == {DEVICE_HELP}
    assert all(p.callback is not None for p in found.values())  # typer wraps the one shared check per command


def test_a_misspelt_device_is_bad_usage_before_any_work(tmp_path) -> None:
    result = runner.invoke(app, ["demo", "--fast", "--out", str(tmp_path / "demo"), "--device", "cuda:x"])
    assert result.exit_code == 2
    assert not (tmp_path / "demo").exists()
