"""`fedseg status` at the end of a federation, and the end as the loop commands' help states it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedseg.cli.app import app
from fedseg.federation.document import DocKind, write_document
from fedseg.federation.keys import load_private_key
from fedseg.federation.plan import load_plan
from fedseg.workflow.store import open_store, site_end
from fedseg.workflow.store.layout import RESULT_KEY
from tests._plan_chain import write_update
from tests._store_fed import end_site, make_federation

runner = CliRunner()


def test_status_counts_the_test_scores_of_the_sites_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_federation(tmp_path, rounds=2)
    keys = tmp_path / "keys"
    write_update(tmp_path, load_plan(tmp_path / "plan.toml"), load_private_key(keys / "coordinator.key"),
                 from_round=2, remove_sites=("site-c",))
    plan, store = load_plan(tmp_path / "plan.toml"), open_store(str(tmp_path / "store"))
    result = {"round": 1, "sha256": "d" * 64, "reason": "last-round", "last_round": 2, "best": None, "curve": []}
    write_document(tmp_path / "result.json", result, kind=DocKind.RESULT, key=load_private_key(keys / "coordinator.key"),
                   plan=plan)
    store.put(RESULT_KEY, tmp_path / "result.json")
    for name in ("site-a", "site-b", "site-c"):  # site-c left at round 2: it keeps its score
        site_end.score_result(end_site(tmp_path, name, monkeypatch), result)
    shown = runner.invoke(app, ["status", "--plan", str(tmp_path / "plan.toml"), "--store", str(tmp_path / "store")],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "2 of 2 site(s) reported" in shown.stdout  # before the fix: 2 of 3, site-c counted though it left


def test_loop_commands_say_they_end_on_the_result_or_an_early_stop() -> None:
    for command in (["site", "run"], ["coordinator", "run"]):
        shown = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.stdout.split())
        assert "until the federation ends" in text and "early stop" in text, text
