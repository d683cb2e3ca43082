"""The site and coordinator loops run a whole tiny federation over a store, by themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fedseg.errors import StoreError
from fedseg.federation.keys import load_private_key
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import load_plan
from fedseg.workflow.store import Retry, open_store
from fedseg.workflow.store.coordinator_loop import PublishConflict, run_coordinator
from fedseg.workflow.store.layout import report_key, update_key
from fedseg.workflow.store.overview import store_overview
from fedseg.workflow.store.site_loop import run_site
from tests._store_fed import SITES, check_finished, make_federation, run_federation


def test_federation_over_a_store_runs_by_itself(tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=2)
    url = str(tmp_path / "store")
    run_federation(tmp_path, url)
    check_finished(tmp_path / "plan.toml", tmp_path / "coord", url)
    overview = store_overview(load_plan(tmp_path / "plan.toml"), open_store(url))
    assert [r.published for r in overview.rounds] == [True, True, True]
    assert all(cell == "accepted" for r in overview.rounds[1:] for cell in r.sites.values())
    # a second coordinator with its own work folder cannot publish over the first
    with pytest.raises(PublishConflict):
        run_coordinator(load_plan(tmp_path / "plan.toml"), key=load_private_key(tmp_path / "keys" / "coordinator.key"),
                        store=open_store(url, retry=Retry(tries=1)), work=tmp_path / "other", poll=0.01,
                        max_idle_polls=1)
    assert "another global" in overview_errors(tmp_path, url)["coordinator"]["error"]


def overview_errors(root: Path, url: str) -> dict:
    return store_overview(load_plan(root / "plan.toml"), open_store(url)).errors


def test_deadline_closes_with_quorum_and_late_update_is_recorded(tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=2, deadline=0.2)
    plan = load_plan(tmp_path / "plan.toml")
    url = str(tmp_path / "store")
    keys = tmp_path / "keys"

    def coordinator(**kw):  # noqa: ANN003, ANN202
        return run_coordinator(plan, key=load_private_key(keys / "coordinator.key"), store=open_store(url),
                               work=tmp_path / "coord", poll=0.0, max_idle_polls=0, **kw)

    def site(s: str):  # noqa: ANN202
        return run_site(plan, key=load_private_key(keys / f"{s}.key"), data=tmp_path / "data" / s,
                        work=tmp_path / s, store=open_store(url), once=True, device="cpu")

    with pytest.raises(StoreError, match="no round closed"):
        coordinator()  # publishes round 0; nobody answered yet
    for s in SITES:
        assert site(s).trained == [1]
    slow = tmp_path / "store" / update_key(1, "site-c")
    slow.rename(tmp_path / "in-flight.fedseg")  # site-c's upload is still on its way
    time.sleep(0.25)
    with pytest.raises(StoreError, match="no round closed"):
        coordinator()  # the deadline passed with a quorum of 2: round 1 closes without site-c
    (tmp_path / "in-flight.fedseg").rename(slow)
    with pytest.raises(StoreError, match="no round closed"):
        coordinator()
    report = json.loads((tmp_path / "store" / report_key(1)).read_text())
    assert report["late"] == ["site-c"] and report["accepted"] == 2
    assert [e["site"] for e in Ledger(tmp_path / "coord" / "ledger.jsonl").entries() if e["event"] == "update-late"] \
        == ["site-c"]
    assert site("site-c").trained == [2]  # it moves on to the global of round 1
    overview = store_overview(plan, open_store(url))
    assert overview.rounds[1].sites == {"site-a": "accepted", "site-b": "accepted", "site-c": "late"}
    assert overview.rounds[2].sites == {"site-a": "", "site-b": "", "site-c": "answered"}
