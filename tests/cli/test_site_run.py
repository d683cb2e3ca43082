"""`fedseg site run`, `fedseg coordinator run` and `fedseg status` through the CLI (no training here)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fedseg.cli.app import app
from tests._store_fed import make_federation

runner = CliRunner()


def test_help_has_examples() -> None:
    for command in (["site", "run"], ["coordinator", "run"], ["status"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.stdout, command


def test_site_once_without_a_global_and_status(tmp_path: Path) -> None:
    plan = make_federation(tmp_path, rounds=1)
    store = str(tmp_path / "store")
    result = runner.invoke(app, ["site", "run", "--plan", str(plan), "--data", str(tmp_path / "data" / "site-a"),
                                 "--key", str(tmp_path / "keys" / "site-a.key"), "--store", store, "--once",
                                 "--work", str(tmp_path / "a"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"site": "site-a", "trained": [], "finished": False, "last_global": None}
    result = runner.invoke(app, ["status", "--plan", str(plan), "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["rounds"][0]["published"] is False and body["errors"] == {}
    result = runner.invoke(app, ["status", "--plan", str(plan), "--store", store])
    assert result.exit_code == 0 and "site-a" in result.stdout


def test_password_in_the_url_is_one_red_line(tmp_path: Path) -> None:
    plan = make_federation(tmp_path, rounds=1)
    result = runner.invoke(app, ["coordinator", "run", "--plan", str(plan), "--key",
                                 str(tmp_path / "keys" / "coordinator.key"), "--store",
                                 "sftp://alice:hunter2@files.example.org/fed"])
    assert result.exit_code == 1
    assert "password in the store URL is refused" in result.output and "hunter2" not in result.output
    assert "Traceback" not in result.output
