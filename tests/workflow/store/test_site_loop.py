"""A site loop's membership per round under a plan chain: joined, left, or running a rotated-out key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedseg.errors import PlanError
from fedseg.federation.keys import generate_keypair, load_private_key, load_public_key
from fedseg.federation.plan import load_plan
from fedseg.workflow.store import open_store
from fedseg.workflow.store.site_loop import _Site
from tests._plan_chain import write_update
from tests._store_fed import make_federation


def test_a_rotated_out_key_stops_with_a_plan_error(tmp_path: Path) -> None:
    make_federation(tmp_path, rounds=4)
    keys = tmp_path / "keys"
    generate_keypair("site-b2", keys)
    coord = load_private_key(keys / "coordinator.key")
    v2 = write_update(tmp_path, load_plan(tmp_path / "plan.toml"), coord, from_round=2,
                      rotate_sites=(("site-b", load_public_key(keys / "site-b2.pub")),))
    write_update(tmp_path, v2, coord, from_round=3, remove_sites=("site-c",))
    plan = load_plan(tmp_path / "plan.toml")

    def site(name: str, key: str) -> _Site:
        return _Site(plan, load_private_key(keys / f"{key}.key"), open_store(str(tmp_path / "store")), tmp_path / name,
                     tmp_path / "data" / name, "cpu", name)

    old = site("site-b", "site-b")
    assert old.member_at(1)
    with pytest.raises(PlanError, match=r"rotated out from round 2; restart `fedseg site run` with the new key"):
        old.member_at(2)  # before the fix: False, and the site waited silently for ever
    assert site("site-b", "site-b2").member_at(3)
    left = site("site-c", "site-c")
    assert left.member_at(2) and not left.member_at(3)  # a site that left follows the globals without training
