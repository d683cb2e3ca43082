"""Plan versions over the store: published once, the same bytes again are fine, another signed vN is a fork."""

from __future__ import annotations

import pytest

from fedseg.federation.plan import load_plan
from fedseg.federation.plan_chain import sign_plan
from fedseg.federation.plan_update import PlanChanges, next_version
from fedseg.workflow.store.backend import open_store
from fedseg.workflow.store.layout import plan_key
from fedseg.workflow.store.plan_sync import publish_plans
from fedseg.workflow.store.publish import PublishConflict
from tests._plan_chain import write_root, write_update


def test_publish_plans_refuses_another_version_of_one_number(tmp_path, plan, site_keys) -> None:
    fed, store_dir = tmp_path / "fed", tmp_path / "store"
    store_dir.mkdir()
    root = write_root(fed, plan)
    chain = write_update(fed, root, site_keys["coordinator"], from_round=2, rounds=12)
    store = open_store(str(store_dir))
    publish_plans(store, chain, set())
    published = (store_dir / plan_key(2)).read_bytes()
    publish_plans(store, chain, set())  # a restarted loop finds its own file: nothing to do
    other = next_version(root, PlanChanges(from_round=2, rounds=14))  # re-signed, different v2
    (store_dir / plan_key(2)).write_bytes(sign_plan(other, site_keys["coordinator"]))
    with pytest.raises(PublishConflict, match="another plan v2 is already published"):
        publish_plans(store, chain, set())
    assert published == (fed / "plan-v0002.toml").read_bytes()
    assert not list(fed.glob(".published-check*"))


def test_status_fetches_the_stores_plan_versions(tmp_path, plan, site_keys, keydir) -> None:
    from fedseg.federation.keys import generate_keypair, load_public_key
    from fedseg.workflow.store.overview import store_overview

    fed, store_dir = tmp_path / "fed", tmp_path / "store"
    store_dir.mkdir()
    root = write_root(fed, plan)
    generate_keypair("site-d", keydir)
    chain = write_update(fed, root, site_keys["coordinator"], from_round=2,
                         add_sites=(("site-d", load_public_key(keydir / "site-d.pub"), 3),))
    store = open_store(str(store_dir))
    publish_plans(store, chain, set())
    member = tmp_path / "member"
    write_root(member, plan)  # a member that holds only the root
    assert store_overview(load_plan(member), store).sites == ["site-a", "site-b", "site-c", "site-d"]
    assert not list(member.glob("plan-v*.toml"))  # fetched into a temporary folder only
