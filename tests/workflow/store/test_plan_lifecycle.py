"""A federation's lifecycle over the store loops: a site joins at round 2, a key is rotated and another revoked
at round 3, plan updates travel on the store, and bad plan updates or a rollback are refused."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from fedseg.errors import PlanError, SignatureError, StateError, StoreError
from fedseg.federation.artifact import read_artifact, write_artifact
from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.ledger import Ledger
from fedseg.federation.plan import load_plan
from fedseg.federation.plan_chain import sign_plan
from fedseg.federation.plan_toml import plan_to_toml
from fedseg.federation.plan_update import PlanChanges, next_version
from fedseg.federation.state import SiteState, default_state_path
from fedseg.workflow.site.received import read_global, read_update
from fedseg.workflow.store import open_store
from fedseg.workflow.store.coordinator_loop import run_coordinator
from fedseg.workflow.store.layout import global_key, plan_key, update_key
from fedseg.workflow.store.overview import store_overview
from fedseg.workflow.store.site_loop import run_site
from tests._plan_chain import write_update
from tests._store_fed import make_federation
from tests._train_data import make_dataset


def test_site_joins_key_rotates_key_is_revoked(tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=3)
    keys, store_dir = tmp_path / "keys", tmp_path / "store"
    for name in ("site-d", "site-b2"):
        generate_keypair(name, keys)
    make_dataset(tmp_path / "data" / "site-d", train=1, val=1, shape=(16, 16, 16), seed=7)
    site_root = tmp_path / "site-plan"  # the sites hold only the root; updates reach them over the store
    site_root.mkdir()
    shutil.copy(tmp_path / "plan.toml", site_root / "plan.toml")
    url = str(store_dir)
    coord_key = load_private_key(keys / "coordinator.key")

    def coordinator() -> None:
        run_coordinator(load_plan(tmp_path / "plan.toml"), key=coord_key, store=open_store(url),
                        work=tmp_path / "coord", poll=0.0, max_idle_polls=0)

    def site(name: str, key: str | None = None) -> list[int]:
        return run_site(load_plan(site_root), key=load_private_key(keys / f"{key or name}.key"),
                        data=tmp_path / "data" / name, work=tmp_path / name, store=open_store(url), once=True,
                        device="cpu").trained

    with pytest.raises(StoreError, match="no round closed"):
        coordinator()  # round 0 published
    assert [site(s) for s in ("site-a", "site-b", "site-c")] == [[1], [1], [1]]
    # the operator signs two plan updates beside plan.toml; the coordinator loop publishes them itself
    v1 = load_plan(tmp_path / "plan.toml")
    revoked = load_private_key(keys / "site-c.key").key_id
    v2 = write_update(tmp_path, v1, coord_key, from_round=2,
                      add_sites=(("site-d", load_public_key(keys / "site-d.pub"), 2),))
    v3 = write_update(tmp_path, v2, coord_key, from_round=3, revoke=(revoked,),
                      rotate_sites=(("site-b", load_public_key(keys / "site-b2.pub")),))
    with pytest.raises(StoreError, match="no round closed"):
        coordinator()  # round 1 aggregated under v1 with three sites; v2 and v3 are on the store
    assert (store_dir / plan_key(2)).exists() and (store_dir / plan_key(3)).exists()
    assert site("site-d") == [2]  # joins at round 2 on the global of round 1
    assert [site(s) for s in ("site-a", "site-b", "site-c")] == [[2], [2], [2]]
    with pytest.raises(StoreError, match="no round closed"):
        coordinator()  # round 2: four sites under v2
    with pytest.raises(PlanError, match="rotated out from round 3; restart `fedseg site run` with the new key"):
        site("site-b")  # its old key trains nothing and says so, rather than wait for ever
    assert site("site-b", "site-b2") == [3]  # the same site with its new key
    assert site("site-c") == []  # revoked: it follows the globals, trains nothing
    assert [site(s) for s in ("site-a", "site-d")] == [[3], [3]]
    # a round-3 update signed by the revoked key anyway is refused, naming site, key and round
    forged = tmp_path / "forged.fedseg"
    shutil.copy(store_dir / update_key(3, "site-a"), tmp_path / "a3.fedseg")
    art = read_artifact(tmp_path / "a3.fedseg", v3)
    manifest = {**art.manifest, "signer": "site-c"}
    write_artifact(forged, manifest=manifest, tensors=art.tensors, key=load_private_key(keys / "site-c.key"))
    with pytest.raises(SignatureError, match=f"key {revoked} of 'site-c', revoked from round 3"):
        read_update(v3, forged)
    shutil.copy(forged, store_dir / update_key(3, "site-c"))
    with pytest.raises(StoreError, match="no round closed"):
        coordinator()  # round 3 closes with the sites of v3 (the forged file is no member's); the end waits
        # for the sites' validation of the last global (test_final.py)
    chain = load_plan(tmp_path / "plan.toml")
    contributors = {}
    for r in range(4):
        shutil.copy(store_dir / global_key(r), tmp_path / "g.fedseg")
        contributors[r] = sorted(c.site for c in read_global(chain, tmp_path / "g.fedseg").typed_manifest.contributors)
        if r:
            for s in contributors[r]:
                shutil.copy(store_dir / update_key(r, s), tmp_path / "u.fedseg")
                assert read_update(chain, tmp_path / "u.fedseg").round == r  # older versions' rounds verify
    assert contributors[1] == ["site-a", "site-b", "site-c"]
    assert contributors[2] == ["site-a", "site-b", "site-c", "site-d"]
    assert contributors[3] == ["site-a", "site-b", "site-d"]
    status = store_overview(chain, open_store(url))
    assert status.sites == ["site-a", "site-b", "site-c", "site-d"]
    assert status.rounds[3].sites["site-a"] == "accepted" and status.rounds[2].sites["site-d"] == "accepted"
    assert [e["version"] for e in Ledger(tmp_path / "coord" / "ledger.jsonl").entries()
            if e["event"] == "plan-accepted"] == [3]

    # a version that would govern a round already published is refused by the coordinator loop
    late = write_update(tmp_path, chain, coord_key, from_round=3, rounds=5)
    with pytest.raises(PlanError, match="takes effect from round 3, but the global of round 3 is already published"):
        coordinator()
    assert not (store_dir / plan_key(4)).exists()
    Path(late.source).unlink()

    # rollback: the site state and the ledger remember v3
    state = SiteState(default_state_path(tmp_path / "data" / "site-a", chain.federation_id))
    assert state.last(chain.federation_id)["plan_version"] == 3
    with pytest.raises(StateError, match="rollback to an older plan version refused"):
        state.check_plan(load_plan(tmp_path / "plan-v0002.toml"))
    with pytest.raises(StateError, match="rollback"):
        Ledger(tmp_path / "coord" / "ledger.jsonl").trust_plan(load_plan(tmp_path / "plan-v0002.toml"))

    # bad plan updates on the store are refused by the site loop, and not kept
    bad = next_version(chain, PlanChanges(from_round=4, rounds=5))
    (store_dir / plan_key(4)).write_text(plan_to_toml(bad))
    with pytest.raises(SignatureError, match="unsigned plan update is refused"):
        site("site-a")
    (store_dir / plan_key(4)).write_bytes(sign_plan(bad, load_private_key(keys / "site-a.key")))
    with pytest.raises(SignatureError, match="must be signed by coordinator"):
        site("site-a")
    assert not (tmp_path / "site-a" / "plans" / "plan-v0004.toml").exists()
    wrong = next_version(v2, PlanChanges(from_round=4, rounds=5))  # made after v2, posted as the v4 after v3
    wrong = replace(wrong, link=replace(wrong.link, version=4), stated=None)
    (store_dir / plan_key(4)).write_bytes(sign_plan(wrong, coord_key))
    with pytest.raises(PlanError, match="does not follow this chain"):
        site("site-a")
    (store_dir / plan_key(4)).unlink()
    assert site("site-a") == []  # the federation is over; nothing is left to refuse
