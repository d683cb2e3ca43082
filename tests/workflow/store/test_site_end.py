"""A site's end of a store-driven run, without training: who uploads its scores, and when again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fedseg.federation.keys import load_private_key
from fedseg.federation.plan import load_plan
from fedseg.workflow.store import open_store, site_end
from fedseg.workflow.store.layout import FINAL_TEST, score_key
from tests._plan_chain import write_update
from tests._store_fed import make_federation

DICE = {"WT": 0.8, "TC": 0.6, "ET": 0.4}


def _site(root: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    def score_global(site: Any, path: Path, *, round_: int, sha256: str, split: str) -> dict[str, Any]:
        return {"global_round": round_, "global_sha256": sha256, "split": split, "cases": 3, "dice": DICE}

    monkeypatch.setattr(site_end, "score_global", score_global)
    return SimpleNamespace(plan=load_plan(root / "plan.toml"), key=load_private_key(root / "keys" / f"{name}.key"),
                           store=open_store(str(root / "store")), work=root / name, site=name, max_global_bytes=2**20,
                           global_path=lambda r: root / name / "globals" / f"global-r{r:04d}.fedseg")


def test_a_site_that_left_keeps_its_test_score_and_finishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_federation(tmp_path, rounds=2, min_cases=1)
    write_update(tmp_path, load_plan(tmp_path / "plan.toml"), load_private_key(tmp_path / "keys" / "coordinator.key"),
                 from_round=2, remove_sites=("site-c",))
    result = {"round": 1, "sha256": "d" * 64, "reason": "last-round", "last_round": 2}
    gone, stays = _site(tmp_path, "site-c", monkeypatch), _site(tmp_path, "site-a", monkeypatch)
    body = site_end.score_result(gone, result)  # before the fix: SignatureError, unknown key
    assert body["dice"] == DICE and (tmp_path / "site-c" / "final" / "test-score.json").exists()
    assert not gone.store.exists(score_key(FINAL_TEST, "site-c"))
    assert site_end.score_result(gone, result) == body  # kept, not scored again
    assert site_end.score_result(stays, result)["dice"] == DICE
    assert stays.store.exists(score_key(FINAL_TEST, "site-a"))
