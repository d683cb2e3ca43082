"""The plan's quorum and rounds bind the coordinator, and a round's global can never be replaced (issue 12.6, 12.9)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedseg.configs.aggregation import Strategy
from fedseg.errors import AggregationError, StateError
from fedseg.federation.ledger import Ledger, _line_hash
from fedseg.federation.plan import Plan
from fedseg.workflow.coordinator.aggregate import aggregate_round
from tests._aggregate_data import model, write_global, write_update

SITES = ("site-a", "site-b", "site-c")


def _updates(tmp_path: Path, plan: Plan, site_keys: dict[str, Any], g: Any, value: float, tag: str,
             round_: int = 1) -> list[Path]:
    return [write_update(plan, site_keys, tmp_path / f"{s}-{tag}.fedseg", s, g.digest,
                         model(value, np.random.default_rng(i)), round_=round_, num_examples=10)
            for i, s in enumerate(SITES)]


def test_min_sites_below_the_plan_is_refused(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    paths = _updates(tmp_path, plan, site_keys, g, 0.0, "a")[:1]
    out = tmp_path / "fed" / "global-r0001.fedseg"
    with pytest.raises(AggregationError, match="would loosen the plan's quorum of 2"):
        aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out,
                        min_sites=1)
    assert sorted(p.name for p in out.parent.iterdir()) == ["global-r0000.fedseg"]


def test_round_beyond_the_plan_is_refused(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    plan = plan.with_settings(rounds=1)
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0001.fedseg", model(0.0), round_=1)
    paths = _updates(tmp_path, plan, site_keys, g, 0.0, "a", round_=2)
    out = tmp_path / "fed" / "global-r0002.fedseg"
    with pytest.raises(AggregationError, match="beyond the plan"):
        aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=paths, out=out)
    assert not out.exists()


@pytest.mark.parametrize("tamper", ["drop-last-line", "delete-ledger"])
def test_a_second_global_for_a_round_is_refused_without_the_ledger(tmp_path: Path, plan: Plan,
                                                                   site_keys: dict[str, Any], tamper: str) -> None:
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    out = tmp_path / "fed" / "global-r0001.fedseg"
    updates = _updates(tmp_path, plan, site_keys, g, 0.0, "a")
    aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=updates, out=out)
    first = out.read_bytes()
    ledger = tmp_path / "fed" / "ledger.jsonl"
    if tamper == "drop-last-line":  # the global-written line goes, and the head is rewritten to match
        lines = ledger.read_bytes().splitlines(keepends=True)[:-1]
        ledger.write_bytes(b"".join(lines))
        head = {"seq": len(lines) - 1, "sha256": _line_hash(lines[-1].rstrip(b"\n"))}
        (ledger.parent / "ledger.jsonl.head").write_text(json.dumps(head))
        Ledger(ledger).verify()
    else:
        for p in ledger.parent.glob("ledger.jsonl*"):
            p.unlink()
    # the same updates combined another way give other weights: a second round-1 global
    for target in (out, tmp_path / "fed" / "global-r0001-b.fedseg"):
        with pytest.raises(StateError, match="refusing to fork the history"):
            aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"], update_paths=updates,
                            out=target, strategy=Strategy.MEDIAN)
    assert out.read_bytes() == first
    assert not (tmp_path / "fed" / "global-r0001-b.fedseg").exists()


def test_server_state_records_the_round_global(tmp_path: Path, plan: Plan, site_keys: dict[str, Any]) -> None:
    plan = plan.with_settings(aggregation=replace(plan.aggregation, strategy=Strategy.FEDADAM))
    g = write_global(plan, site_keys, tmp_path / "fed" / "global-r0000.fedseg", model(0.0))
    first = tmp_path / "fed" / "global-r0001.fedseg"
    aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"],
                    update_paths=_updates(tmp_path, plan, site_keys, g, 0.0, "a"), out=first)
    first.unlink()  # the global gone from the folder and the ledger gone too: the server state still knows
    for p in first.parent.glob("ledger.jsonl*"):
        p.unlink()
    with pytest.raises(StateError, match="server-state.h5 records global"):
        aggregate_round(plan=plan, global_path=g.path, key=site_keys["coordinator"],
                        update_paths=_updates(tmp_path, plan, site_keys, g, 0.5, "b"), out=first)
    assert not first.exists()
