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
    folder = runner.invoke(app, ["status", "--plan", str(plan.parent), "--store", store, "--json"])  # --plan DIR
    assert folder.exit_code == 0, folder.output
    assert json.loads(folder.stdout)["sites"] == body["sites"]


def test_password_in_the_url_is_one_red_line(tmp_path: Path) -> None:
    plan = make_federation(tmp_path, rounds=1)
    result = runner.invoke(app, ["coordinator", "run", "--plan", str(plan), "--key",
                                 str(tmp_path / "keys" / "coordinator.key"), "--store",
                                 "sftp://alice:hunter2@files.example.org/fed"])
    assert result.exit_code == 1
    assert "password in the store URL is refused" in result.output and "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_a_joining_site_finds_its_default_work_folder_in_the_stores_plans(tmp_path: Path, monkeypatch) -> None:
    import shutil

    from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
    from fedseg.federation.plan import load_plan
    from fedseg.workflow.store.layout import plan_key
    from tests._plan_chain import write_update

    plan = make_federation(tmp_path, rounds=2)
    generate_keypair("site-d", tmp_path / "keys")
    coord = tmp_path / "coord-plans"
    coord.mkdir()
    shutil.copy(plan, coord / "plan.toml")
    write_update(coord, load_plan(coord / "plan.toml"), load_private_key(tmp_path / "keys" / "coordinator.key"),
                 from_round=2, add_sites=(("site-d", load_public_key(tmp_path / "keys" / "site-d.pub"), 2),))
    store = tmp_path / "store"
    (store / plan_key(2)).parent.mkdir(parents=True)
    shutil.copy(coord / "plan-v0002.toml", store / plan_key(2))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["site", "run", "--plan", str(plan), "--data", str(tmp_path / "data" / "site-a"),
                                 "--key", str(tmp_path / "keys" / "site-d.key"), "--store", str(store), "--once",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["site"] == "site-d"
    assert (tmp_path / ".fedseg-site-d" / "plans" / "plan-v0002.toml").exists()
