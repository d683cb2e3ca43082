"""A site's end of a store-driven run, without training: who uploads its scores, and when again."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.federation.keys import load_private_key
from fedseg.federation.plan import load_plan
from fedseg.workflow.store import site_end
from fedseg.workflow.store.layout import FINAL_TEST, score_key
from tests._plan_chain import write_update
from tests._store_fed import end_site, make_federation

DICE = {"WT": 0.5, "TC": 0.5, "ET": 0.5}


def test_a_site_that_left_keeps_its_test_score_and_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_federation(tmp_path, rounds=2, min_cases=1)
    write_update(tmp_path, load_plan(tmp_path / "plan.toml"), load_private_key(tmp_path / "keys" / "coordinator.key"),
                 from_round=2, remove_sites=("site-c",))
    result = {"round": 1, "sha256": "d" * 64, "reason": "last-round", "last_round": 2}
    gone, stays = end_site(tmp_path, "site-c", monkeypatch), end_site(tmp_path, "site-a", monkeypatch)
    body = site_end.score_result(gone, result)  # before the fix: SignatureError, unknown key
    assert body["dice"] == DICE and (tmp_path / "site-c" / "final" / "test-score.json").exists()
    assert not gone.store.exists(score_key(FINAL_TEST, "site-c"))
    assert site_end.score_result(gone, result) == body  # kept, not scored again
    assert site_end.score_result(stays, result)["dice"] == DICE
    assert stays.store.exists(score_key(FINAL_TEST, "site-a"))
