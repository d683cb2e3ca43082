"""The coordinator's end without training: which sites' validation of the last global it waits for."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import load_plan
from fedseg.fsutil import atomic_write_json
from fedseg.workflow.store import open_store, site_end
from fedseg.workflow.store.coordinator_end import last_global_scored
from tests._plan_chain import write_update
from tests._store_fed import SITES, end_site, make_federation

DIGEST = "d" * 64


def _coordinator(root: Path, last: int, digest: str = DIGEST) -> Any:
    ledger = Ledger(root / "coord" / "ledger.jsonl")
    ledger.append("global-written", round=last, sha256=digest)
    atomic_write_json(root / "coord" / "rounds" / f"r{last + 1:04d}" / "opened.json", {"published_at": 0.0})
    return SimpleNamespace(plan=load_plan(root / "plan.toml"), store=open_store(str(root / "store")), work=root / "coord",
                           ledger_path=ledger.path, clock=lambda: 1.0,
                           round_dir=lambda r: root / "coord" / "rounds" / f"r{r:04d}")


def _report(root: Path, name: str, last: int, monkeypatch: pytest.MonkeyPatch, digest: str = DIGEST,
            dice: float = 0.5) -> None:
    """Upload ``name``'s signed validation score of the last global as the site loop does."""
    site = end_site(root, name, monkeypatch, dice=dice)
    site_end.report_last_validation(site, {"round": last, "sha256": digest})


def test_the_last_global_waits_for_the_sites_in_force_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_federation(tmp_path, rounds=2, min_cases=1)
    generate_keypair("site-d", tmp_path / "keys")
    # a version for a round after the last one: site-d joins from round 3 (it never trains, never reports)
    write_update(tmp_path, load_plan(tmp_path / "plan.toml"), load_private_key(tmp_path / "keys" / "coordinator.key"),
                 from_round=3, add_sites=(("site-d", load_public_key(tmp_path / "keys" / "site-d.pub"), 2),))
    co = _coordinator(tmp_path, 2)
    for name in SITES[:2]:
        _report(tmp_path, name, 2, monkeypatch)
    assert not last_global_scored(co, 2)
    _report(tmp_path, "site-c", 2, monkeypatch)
    assert last_global_scored(co, 2)  # before the fix: it waited for site-d for ever
    point = next(e for e in Ledger(co.ledger_path).entries() if e["event"] == "global-validated")
    assert point["sites"] == list(SITES) and point["validation"]["cases"] == 6


def test_scores_of_a_former_last_global_do_not_answer_for_the_new_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    make_federation(tmp_path, rounds=2, min_cases=1)
    co = _coordinator(tmp_path, 2)
    for name in SITES:
        _report(tmp_path, name, 2, monkeypatch)
    assert last_global_scored(co, 2)
    # `plan update --rounds 4 --from-round 3` after global 2 was out and scored; global 4 is the new last one
    write_update(tmp_path, load_plan(tmp_path / "plan.toml"), load_private_key(tmp_path / "keys" / "coordinator.key"),
                 from_round=3, rounds=4)
    co = _coordinator(tmp_path, 4, "e" * 64)
    for name in SITES[:2]:
        _report(tmp_path, name, 4, monkeypatch, "e" * 64, dice=0.7)
    assert not last_global_scored(co, 4)  # site-c's score of global 2 is no answer for global 4
    _report(tmp_path, "site-c", 4, monkeypatch, "e" * 64, dice=0.7)  # before the fix: never uploaded (marker)
    assert last_global_scored(co, 4)
    points = [e["validation"] for e in Ledger(co.ledger_path).entries() if e["event"] == "global-validated"]
    assert [(p["round"], p["sha256"], round(p["mean"], 6)) for p in points] == [(2, DIGEST, 0.5), (4, "e" * 64, 0.7)]
