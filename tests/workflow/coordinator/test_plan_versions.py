"""Aggregation across plan versions: a new coordinator key and a joining site from round 2; rollback refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedseg.errors import AggregationError, StateError
from fedseg.federation.artifact import Kind, read_artifact
from fedseg.federation.keys import generate_keypair, load_private_key
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import Plan, load_plan
from fedseg.workflow.coordinator.aggregate import aggregate_round
from tests._aggregate_data import model, write_global, write_update
from tests._plan_chain import write_root
from tests._plan_chain import write_update as write_plan_version

SITES = ("site-a", "site-b", "site-c")


def test_rounds_follow_the_plan_version_in_force(tmp_path: Path, plan: Plan, keydir: Path,
                                                 site_keys: dict[str, Any]) -> None:
    for name in ("coord2", "site-d"):
        generate_keypair(name, keydir)
    new_coord, site_d = load_private_key(keydir / "coord2.key"), load_private_key(keydir / "site-d.key")
    fed = tmp_path / "fed"
    v1 = write_root(fed, plan)
    g0 = write_global(v1, site_keys, fed / "global-r0000.fedseg", model(0.0))
    p1 = [write_update(v1, site_keys, tmp_path / f"{s}-1.fedseg", s, g0.digest, model(1.0)) for s in SITES]
    aggregate_round(plan=v1, global_path=g0.path, key=site_keys["coordinator"], update_paths=p1,
                    out=fed / "global-r0001.fedseg")
    v2 = write_plan_version(fed, v1, site_keys["coordinator"], from_round=2, coordinator_key=new_coord.public_key,
                            add_sites=(("site-d", site_d.public_key, 10),))
    g1 = read_artifact(fed / "global-r0001.fedseg", v2, kind=Kind.GLOBAL)  # the old key's global still verifies
    keys = {**site_keys, "site-d": site_d}
    p2 = [write_update(v2, keys, tmp_path / f"{s}-2.fedseg", s, g1.digest, model(2.0), round_=2)
          for s in (*SITES, "site-d")]
    with pytest.raises(AggregationError, match="is not the plan key of coordinator"):
        aggregate_round(plan=v2, global_path=g1.path, key=site_keys["coordinator"], update_paths=p2,
                        out=fed / "global-r0002.fedseg")
    report = aggregate_round(plan=v2, global_path=g1.path, key=new_coord, update_paths=p2,
                             out=fed / "global-r0002.fedseg")
    assert sorted(v.site for v in report.accepted) == [*SITES, "site-d"]
    g2 = read_artifact(fed / "global-r0002.fedseg", load_plan(fed), kind=Kind.GLOBAL)
    assert (g2.manifest["plan_version"], g2.signer.key_id) == (2, new_coord.key_id)
    assert [e["version"] for e in Ledger(fed / "ledger.jsonl").entries() if e["event"] == "plan-accepted"] == [2]
    with pytest.raises(StateError, match="rollback to an older plan version refused"):
        aggregate_round(plan=load_plan(fed / "plan-v0002.toml").versions[0], global_path=g1.path,
                        key=site_keys["coordinator"], update_paths=p1, out=fed / "global-r0002.fedseg", dry_run=True)
